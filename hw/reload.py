"""New weights for a built accelerator (`xnorkit weights BUILD NEW_MODEL.onnx`): the register writes that load
a retrained model of the same structure into the layers built writable (`xnorkit hw --writable-weights`), with
no new synthesis. The new model is lowered at the build's folding; every stage must match the built one in all
but the writable layers' weights and thresholds, which must fit the built memories' fields."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from xnorkit.errors import XnorkitError
from xnorkit.hw import config_map
from xnorkit.hw import folding as fold_mod
from xnorkit.hw.lowering import lower
from xnorkit.hw.stages import Lowered, Stage
from xnorkit.ir import Graph

# stage parameters a writable layer's new weights may change: the memories' contents, and the accumulator width
# the IR derives from the weights (checked against the built one instead)
_CONTENTS = {"acc_bits"}


def _same_stage(built: Stage, new: Stage) -> str | None:
    """Why `new` cannot run on the hardware built for `built` (None when it can)."""
    if (built.kind, built.name, built.in_bits, built.out_bits, built.in_elems, built.out_elems) != (
            new.kind, new.name, new.in_bits, new.out_bits, new.in_elems, new.out_elems):
        return f"its stage {new.name} ({new.kind}) is not the built {built.name} ({built.kind}) of the same widths"
    ignore = _CONTENTS if built.kind == "mvtu" else set()
    differ = sorted(k for k in built.params if k not in ignore and built.params[k] != new.params.get(k)
                    and k != "score_words")
    if differ:
        return f"'{new.name}' differs in {', '.join(differ)}"
    if built.kind == "mvtu" and new.params["acc_bits"] > built.params["acc_bits"]:
        return (f"'{new.name}' needs {new.params['acc_bits']}-bit accumulators; the build has "
                f"{built.params['acc_bits']}")
    return None


def _contents_equal(built: Lowered, new: Lowered, index: int) -> bool:
    def same(a, b) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

    return same(built.matrices.get(index), new.matrices.get(index)) and same(built.thresholds.get(index),
                                                                           new.thresholds.get(index))


def _check(built: Lowered, new: Lowered) -> None:
    if len(built.stages) != len(new.stages):
        raise XnorkitError(f"the new model has {len(new.stages)} hardware stages, the build {len(built.stages)}: "
                           "not the same structure (regenerate the accelerator for it)")
    for b, n in zip(built.stages, new.stages, strict=True):
        reason = _same_stage(b, n)
        if reason is None and not b.params.get("writable") and not _contents_equal(built, new, b.index):
            reason = (f"'{b.name}' is not writable in this build and its weights or thresholds differ "
                      f"(generate the accelerator with --writable-weights {b.name})")
        if reason is not None:
            raise XnorkitError(f"the new model does not fit this accelerator: {reason}")
    for s in config_map.writable_stages(built):
        t = new.thresholds.get(s.index)
        bound = 1 << (s.params["acc_bits"] - 1)
        if t is not None and (np.min(t) < -bound or np.max(t) >= bound):
            raise XnorkitError(f"the new model's thresholds of '{s.name}' exceed the built {s.params['acc_bits']}-bit "
                               "fields")


def writes(graph: Graph, design: dict, new: Graph) -> np.ndarray:
    """(address, value) rows (uint32) loading `new` into the accelerator built from `graph` as `design`
    (design.json) describes it."""
    if "writable" not in design:
        raise XnorkitError("this accelerator has no writable weights; generate it with `xnorkit hw BUILD "
                           "--writable-weights all` (or the layers to update)")
    folding = fold_mod.from_json(design["folding"])
    shapes = {m.name: fold_mod.matrix_shape(graph, m) for m in fold_mod.mac_layers(graph)}
    for m in fold_mod.mac_layers(new):
        if m.name in shapes and fold_mod.matrix_shape(new, m) != shapes[m.name]:
            (mw, mh, _), (new_mw, new_mh, _) = shapes[m.name], fold_mod.matrix_shape(new, m)
            raise XnorkitError(f"the new model does not fit this accelerator: '{m.name}' is {new_mh} x {new_mw} "
                               f"there and {mh} x {mw} here (the backends drop neurons whose output is constant: "
                               "`xnorkit inspect` lists them)")
    built = lower(graph, folding)
    if json.loads(json.dumps(config_map.describe(built))) != design["writable"]:
        raise XnorkitError("design.json's register map does not match its folding and the build's model (edited, or "
                           "copied from another build); regenerate the accelerator with `xnorkit hw BUILD "
                           "--writable-weights ...`")
    try:
        fresh = lower(new, folding)
    except XnorkitError as e:
        raise XnorkitError(f"the new model does not fit this accelerator: {e}") from None
    _check(built, fresh)
    # the memory words at the built widths (a narrower new accumulator still fills the built fields)
    for s in config_map.writable_stages(built):
        fresh.stages[s.index] = replace(fresh.stages[s.index], params=s.params)
    rows = config_map.writes(fresh)
    return np.asarray(rows, dtype=np.uint32).reshape(-1, 2)
