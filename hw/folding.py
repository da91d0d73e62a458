"""PE/SIMD folding of the matrix-vector units: validation, a solver, and the analytical cycle model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit import packing, passes
from xnorkit.errors import XnorkitError
from xnorkit.hw.stages import MvtuMemory
from xnorkit.ir import (
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    MatMul,
    MaxPool,
    Quantize,
    Reshape,
    SumPool,
    Transpose,
    inputs_of,
)

WEIGHT_STYLES = ("auto", "block", "logic", "writable")


@dataclass(frozen=True)
class Fold:
    """A unit's parallelism (PE output lanes x SIMD inputs per cycle) and where its weights live: block RAM,
    logic (constants folded into the LUTs, zero weights of a pruned layer vanish), the tool's choice, or
    writable: a RAM behind the AXI4-Lite port with its thresholds (hw.config_map), every tile stored."""

    pe: int
    simd: int
    weights: str = "auto"


Folding = dict[str, Fold]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


MacLayer = MatMul | Conv


def mac_layers(graph: Graph) -> list[MacLayer]:
    """The layers that become matrix-vector units: fully connected ones and convolutions."""
    return [n for n in graph.nodes if isinstance(n, MatMul | Conv)]


def matrix_shape(graph: Graph, layer: MacLayer) -> tuple[int, int, int]:
    """(MW, MH, positions): the unit's matrix (inputs per output, outputs) and how many vectors one
    inference feeds it (a convolution: one per output position, its window as the vector)."""
    if isinstance(layer, MatMul):
        return layer.in_features, layer.out_features, 1
    out_c, in_c, kh, kw = layer.weights.shape
    _, ho, wo = graph.shape(layer.output)
    return in_c * kh * kw, out_c, ho * wo


def unit_matrix(graph: Graph, layer: MacLayer) -> np.ndarray:
    """The unit's weight matrix (outputs, inputs) in the order its inputs stream, where that order does not depend
    on the layers before it: a convolution's window order (ky, kx, c), a fully connected layer's IR columns."""
    if isinstance(layer, MatMul):
        return layer.weights
    return layer.weights.transpose(0, 2, 3, 1).reshape(layer.out_channels, -1)


def skipped_steps(graph: Graph, layer: MacLayer, fold: Fold) -> int | None:
    """Cycles per vector of the unit when it skips zero tiles (packing.tile_schedule), or None when it computes
    every tile: too few zero tiles to pay for the step memory, a grouped convolution, or a fully connected layer
    after a flatten (its columns are permuted into the feature map's stream order; the generator keeps such
    units dense). Counted without building the schedule: the solvers ask for every candidate folding."""
    if (isinstance(layer, Conv) and layer.groups > 1) or isinstance(graph.producer(layer.input), Reshape | Transpose):
        return None
    if fold.weights == "writable":  # new weights may put their zeros anywhere
        return None
    matrix = unit_matrix(graph, layer)
    if np.count_nonzero(matrix) == matrix.size:
        return None
    steps, computing = packing.tile_counts(matrix, fold.pe, fold.simd)
    # it never takes more cycles; it is chosen when its memories (the computing tiles and a step word per cycle)
    # are smaller than every tile stored (small tiles of few zeros would cost more in step words)
    mw, mh, _ = matrix_shape(graph, layer)
    dense = MvtuMemory(fold.pe, fold.simd, layer.w_dtype.bits, mw, mh)
    sparse = MvtuMemory(fold.pe, fold.simd, layer.w_dtype.bits, mw, mh, computing, steps)
    return steps if sparse.total_bits() < dense.weight_bits() else None


def unit_schedule(graph: Graph, layer: MacLayer, fold: Fold) -> list[packing.Step] | None:
    """The unit's schedule of tiles (packing.tile_schedule) when it skips zero tiles (skipped_steps), else None."""
    if skipped_steps(graph, layer, fold) is None:
        return None
    return packing.tile_schedule(unit_matrix(graph, layer), fold.pe, fold.simd)


def layer_cycles(graph: Graph, layer: MacLayer, fold: Fold) -> int:
    """Cycles one inference spends in the unit: SF * NF per vector, one PE x SIMD fold per cycle; a unit
    skipping zero tiles spends one cycle per step of its schedule."""
    mw, mh, positions = matrix_shape(graph, layer)
    steps = skipped_steps(graph, layer, fold)
    return positions * (steps if steps is not None else (mw // fold.simd) * (mh // fold.pe))


def initiation_interval(graph: Graph, folding: Folding) -> int:
    """Ideal steady-state cycles per inference of the folding: its slowest unit (the generated design may
    add window and pooling stages, whose cycles design.json lists; hw.emit_sv.design_info)."""
    return max(layer_cycles(graph, m, folding[m.name]) for m in mac_layers(graph))


def _stream_elems(graph: Graph, folding: Folding, tensor: str) -> int | None:
    """Elements per beat of the stream carrying `tensor`: the producing unit's PE, a pooled, summed or
    concatenated feature map's channels (one pixel per beat); None at the network input (its stream takes
    whatever the first stage reads)."""
    node = graph.producer(tensor)
    while node is not None and not isinstance(node, MatMul | Conv | MaxPool | SumPool | Add | Concat | Quantize):
        node = graph.producer(node.input)
    if node is None or isinstance(node, Quantize):
        return None
    if isinstance(node, MatMul | Conv):
        return folding[node.name].pe
    return graph.shape(node.output)[0]


def reads_elems(graph: Graph, layer: MacLayer, fold: Fold) -> int:
    """Elements per beat the stage in front of the unit reads: its SIMD, or a convolution's sliding window,
    which takes one pixel (all channels) per beat."""
    return fold.simd if isinstance(layer, MatMul) else int(layer.weights.shape[1]) * layer.groups


def _check(graph: Graph, layer: MacLayer, fold: Fold, incoming: int | None) -> str | None:
    mw, mh, _ = matrix_shape(graph, layer)
    if fold.pe < 1 or mh % fold.pe:
        return f"PE={fold.pe} must divide its {mh} outputs"
    if fold.simd < 1 or mw % fold.simd:
        return f"SIMD={fold.simd} must divide its {mw} inputs"
    if isinstance(layer, Conv):
        channels = int(layer.weights.shape[1])  # of one group
        group = f" per group ({layer.groups} groups)" if layer.groups > 1 else ""
        if channels % fold.simd and fold.simd != mw:
            return (f"SIMD={fold.simd} must divide its {channels} input channels{group} or cover the whole "
                    f"{mw}-element window")
        if (mh // layer.groups) % fold.pe:
            return f"PE={fold.pe} must divide its {mh // layer.groups} outputs per group ({layer.groups} groups)"
    reads = reads_elems(graph, layer, fold)
    if incoming is not None and incoming % reads and reads % incoming:
        return (f"it reads {reads} elements per beat and the stream before it carries {incoming}: one must "
                f"divide the other (stream width conversion)")
    return None


def validate(graph: Graph, folding: Folding) -> None:
    layers = mac_layers(graph)
    missing = [m.name for m in layers if m.name not in folding]
    if missing:
        raise XnorkitError(f"folding has no entry for layer(s) {', '.join(missing)}")
    for m in layers:
        problem = _check(graph, m, folding[m.name], _stream_elems(graph, folding, m.input))
        if problem:
            raise XnorkitError(f"folding of '{m.name}': {problem}")


def solve(graph: Graph, target_cycles: int, exit_rate: float = 0.0) -> Folding:
    """Per layer, the fewest PE x SIMD lanes that reach `target_cycles` per inference (SIMD preferred, as
    it shares one input word across lanes), keeping consecutive stages width-compatible. A layer that
    cannot reach the target gets the fastest folding there is (with the fewest lanes). With early exits, of which
    the first takes `exit_rate` of the inputs, the layers after it see only the rest: they aim for target_cycles /
    (1 - exit_rate), and the always-run layers keep the pace."""
    if not 0.0 <= exit_rate < 1.0:
        raise XnorkitError(f"the exit rate must be at least 0 and below 1 (got {exit_rate})")
    if exit_rate and not graph.exits:
        raise XnorkitError("an exit rate needs early exits that stop the inference: set them first (xnorkit exits "
                           "BUILD --margin M or --calibrate DATASET)")
    always = exit_segments(graph)[0][0] if exit_rate else set()
    folding: Folding = {}
    for m in mac_layers(graph):
        target = target_cycles if m.name in always or not exit_rate else int(target_cycles / (1.0 - exit_rate))
        mw, mh, _ = matrix_shape(graph, m)
        incoming = _stream_elems(graph, folding, m.input)
        options = []
        for pe in divisors(mh):
            for simd in divisors(mw):
                fold = Fold(pe, simd)
                if _check(graph, m, fold, incoming) is None:
                    options.append((max(layer_cycles(graph, m, fold), target), pe * simd, -simd, fold))
        folding[m.name] = min(options, key=lambda o: o[:3])[3]
    validate(graph, folding)
    return folding


def exit_segments(graph: Graph) -> list[tuple[set[str], str]]:
    """Per early exit, in order: the nodes its output needs that no earlier exit needs (passes.exit_schedule),
    and the one tensor where the rest of the network leaves them (the exit's branch, which the RTL gates).
    Empty without exits."""
    if len(graph.outputs) == 1:
        return []
    if len(graph.exits) != len(graph.outputs) - 1:
        raise XnorkitError(f"the RTL generator builds early exits that stop the inference; this network has "
                           f"{len(graph.outputs) - 1} extra outputs and no exits set: set their margins first "
                           f"(xnorkit exits BUILD --margin M or --calibrate DATASET)")
    segments, names = [], set()
    for (output, _), group in zip(graph.exits, passes.exit_schedule(graph)[0], strict=True):
        names |= group
        needed = {graph.node(n).output for n in names}
        leaving = {t for n in graph.nodes if n.name not in names and not isinstance(n, Dequantize)
                   for t in inputs_of(n) if t in needed}
        if len(leaving) != 1:
            raise XnorkitError(f"the early exit '{output}' shares {len(leaving)} tensors with the rest of the network "
                               f"({', '.join(sorted(leaving))}); the RTL gates the network where it leaves one")
        segments.append((group, leaving.pop()))
    return segments


def to_json(folding: Folding) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd, **({"weights": f.weights} if f.weights != "auto" else {})}
            for name, f in folding.items()}


def from_json(data: dict) -> Folding:
    try:
        folding = {name: Fold(int(v["pe"]), int(v["simd"]), str(v.get("weights", "auto"))) for name, v in data.items()}
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise XnorkitError('folding JSON must map each layer name to {"pe": N, "simd": N} (optionally '
                           '"weights": "block", "logic" or "writable")') from None
    bad = next((n for n, f in folding.items() if f.weights not in WEIGHT_STYLES), None)
    if bad:
        raise XnorkitError(f"folding of '{bad}': weights must be one of {', '.join(WEIGHT_STYLES)}")
    return folding


def with_writable(graph: Graph, folding: Folding, layers: str) -> Folding:
    """`folding` with the weights of `layers` ("all", or comma-separated layer names) writable at run time."""
    names = [m.name for m in mac_layers(graph)] if layers.strip() == "all" else [n.strip() for n in layers.split(",")]
    unknown = [n for n in names if n not in folding]
    if unknown or not names:
        raise XnorkitError(f"--writable-weights: no layer named {', '.join(unknown) or repr(layers)}; the layers "
                           f"with weights are {', '.join(m.name for m in mac_layers(graph))} (or give 'all')")
    return {n: Fold(f.pe, f.simd, "writable") if n in names else f for n, f in folding.items()}


def load(path: str | Path) -> Folding:
    p = Path(path)
    try:
        return from_json(json.loads(p.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise XnorkitError(f"cannot read folding file {p}: {e}") from None
