"""Where feature maps differ from the IR's order, one rule for every backend: they are stored (C) and streamed
(RTL) pixel by pixel, channels fastest. A transpose or a flatten changes no value, only the order in which a
later fully connected layer reads its inputs: `track` records it per tensor as (the stored (C, H, W) map, the
logical axes as axes of that map, flattened or not), and packing.hwc_columns lays that layer's weight
columns out in the stored order."""

from __future__ import annotations

from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph, Reshape, Transpose, inputs_of

Layout = tuple[tuple[int, ...], tuple[int, ...], bool]


def track(graph: Graph, node: Reshape | Transpose, layouts: dict[str, Layout], backend: str) -> None:
    """Record the layout of `node`'s output; `backend` says how it holds maps, for the refusal of any other
    reshape (e.g. "the RTL streams")."""
    shape = graph.shape(node.input)
    map_shape, axes, flat = layouts.get(node.input) or (shape, (0, 1, 2), False)
    if isinstance(node, Transpose) and len(shape) == 3 and not flat:
        layouts[node.output] = (map_shape, tuple(axes[p] for p in node.perm), False)
    elif isinstance(node, Reshape) and len(map_shape) == 3 and len(node.shape) == 1:
        layouts[node.output] = (map_shape, axes, True)
    elif not (isinstance(node, Reshape) and tuple(node.shape) == tuple(shape)):
        raise XnorkitError(f"{type(node).__name__.lower()} '{node.name}' {shape} -> "
                           f"{tuple(graph.shape(node.output))}: {backend} feature maps pixel by pixel and supports "
                           f"only a flatten (after a transpose, or not) before a fully connected layer")
    elif node.input in layouts:
        layouts[node.output] = layouts[node.input]


def check_reads_stored_order(node, layouts: dict[str, Layout], backend: str) -> None:
    """Only a flatten may read a transposed map: every other layer reads maps in their stored order."""
    transposed = [t for t in inputs_of(node) if t in layouts and not layouts[t][2]]
    if transposed and not isinstance(node, Reshape | Transpose):
        raise XnorkitError(f"'{node.name}' reads a transposed feature map; {backend} feature maps pixel by "
                           f"pixel and only a flatten may follow a transpose")
