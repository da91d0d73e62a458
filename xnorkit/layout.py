"""Where feature maps differ from the IR's order, one rule for every backend: they are stored (C) and streamed
(RTL) pixel by pixel, channels fastest. A transpose or a flatten changes no value, only the order in which a
later fully connected layer reads its inputs: `track` records it per tensor as (the stored (C, H, W) map, the
logical axes as axes of that map, flattened or not), and packing.hwc_columns lays that layer's weight
columns out in the stored order. A design's input and output streams (design.json) follow the same rule
(`stream_layout`); `stream_order` and `ir_order` turn the IR's (C, H, W) rows into it and back."""

from __future__ import annotations

import numpy as np

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


def stream_layout(shape: tuple[int, ...], stored_as_is: bool = False) -> str:
    """How a tensor of `shape` streams: "hwc" for a (C, H, W) feature map (pixel by pixel, channels fastest),
    "flat" for a vector or for an input already in its stream order (Graph.channels_last_input)."""
    return "hwc" if len(shape) == 3 and not stored_as_is else "flat"


def stream_order(values: np.ndarray, stream: dict) -> np.ndarray:
    """Integer tensors (N, *shape) in the order a stream of the design (its design.json "input" or
    "output": "layout" and "shape") carries them, one row per inference."""
    x = np.asarray(values, dtype=np.int64)
    if stream.get("layout") == "hwc":
        x = x.reshape(len(x), *stream["shape"]).transpose(0, 2, 3, 1)
    return x.reshape(len(x), -1)


def ir_order(rows: np.ndarray, stream: dict) -> np.ndarray:
    """The inverse of `stream_order`, flattened: rows as received, in the IR's row-major (C, H, W) order."""
    x = np.asarray(rows)
    if stream.get("layout") == "hwc":
        c, h, w = stream["shape"]
        x = x.reshape(len(x), h, w, c).transpose(0, 3, 1, 2)
    return x.reshape(len(x), -1)
