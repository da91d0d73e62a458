"""PE/SIMD folding of the matrix-vector units: validation, a solver, and the analytical cycle model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph, MatMul


@dataclass(frozen=True)
class Fold:
    pe: int
    simd: int


Folding = dict[str, Fold]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def layer_cycles(layer: MatMul, fold: Fold) -> int:
    """Cycles one input vector spends in the unit: SF * NF, one fold per cycle."""
    return (layer.in_features // fold.simd) * (layer.out_features // fold.pe)


def initiation_interval(graph: Graph, folding: Folding) -> int:
    """Steady-state cycles per inference of the whole pipeline: its slowest layer."""
    return max(layer_cycles(m, folding[m.name]) for m in graph.matmuls())


def validate(graph: Graph, folding: Folding) -> None:
    layers = graph.matmuls()
    missing = [m.name for m in layers if m.name not in folding]
    if missing:
        raise XnorkitError(f"folding has no entry for layer(s) {', '.join(missing)}")
    previous_pe = None
    for m in layers:
        f = folding[m.name]
        if f.pe < 1 or m.out_features % f.pe:
            raise XnorkitError(f"folding of '{m.name}': PE={f.pe} must divide its {m.out_features} outputs")
        if f.simd < 1 or m.in_features % f.simd:
            raise XnorkitError(f"folding of '{m.name}': SIMD={f.simd} must divide its {m.in_features} inputs")
        if previous_pe is not None and previous_pe % f.simd and f.simd % previous_pe:
            raise XnorkitError(f"folding of '{m.name}': SIMD={f.simd} and the previous layer's PE={previous_pe} "
                               f"must divide one another (stream width conversion)")
        previous_pe = f.pe


def solve(graph: Graph, target_cycles: int) -> Folding:
    """Per layer, the fewest PE x SIMD lanes that reach `target_cycles` per vector (SIMD preferred, as it
    shares one input word across lanes), keeping consecutive layers width-compatible. A layer that cannot
    reach the target gets full parallelism."""
    folding: Folding = {}
    previous_pe = None
    for m in graph.matmuls():
        options = []
        for pe in divisors(m.out_features):
            for simd in divisors(m.in_features):
                if previous_pe is not None and previous_pe % simd and simd % previous_pe:
                    continue
                fold = Fold(pe, simd)
                options.append((layer_cycles(m, fold) > target_cycles, pe * simd, -simd, fold))
        fold = min(options, key=lambda o: o[:3])[3]
        folding[m.name] = fold
        previous_pe = fold.pe
    validate(graph, folding)
    return folding


def to_json(folding: Folding) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd} for name, f in folding.items()}


def from_json(data: dict) -> Folding:
    try:
        return {name: Fold(int(v["pe"]), int(v["simd"])) for name, v in data.items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise XnorkitError('folding JSON must map each layer name to {"pe": N, "simd": N}') from None


def load(path: str | Path) -> Folding:
    p = Path(path)
    try:
        return from_json(json.loads(p.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise XnorkitError(f"cannot read folding file {p}: {e}") from None
