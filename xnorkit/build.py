"""The BUILD folder: what `compile` writes and what `predict`, `hw`, `sim` and `firmware` read.

    BUILD/ir.json, ir.npz   the integer IR (xnorkit.ir)
    BUILD/model.onnx        the QONNX model it came from (for the qonnx backend)
    BUILD/rtl/              SystemVerilog, .mem files, design.json (xnorkit hw)
    BUILD/firmware/         C library and runners (xnorkit firmware)

Every writer goes through xnorkit.outputs: a temporary folder renamed into place, so a failure or an interrupt
leaves the old folder or the new one, complete, and a folder that is not an xnorkit output is never replaced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from xnorkit import compare, golden, ir, naming, numerics
from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph, MatMul
from xnorkit.outputs import check_file, replacing, write_file, write_tree

if TYPE_CHECKING:  # a board is loaded by the backends that need one
    from xnorkit.boards import Board

BACKENDS = ("qonnx", "golden", "rtl", "hls", "c", "cortex-m4")


def compile_model(model: Path, build: Path, input_quant: str | None = None, name: str | None = None) -> Graph:
    """QONNX to BUILD/ir.json + ir.npz, and BUILD/model.onnx: the QONNX compiled, as one self-contained file
    (weights the exporter put in an external `.onnx.data` file come along), with `input_quant`'s quantizer
    (frontend.parse_input_quant) inserted at the input when given, so qonnx's executor can check golden on it.
    The graph is named `name`, by default after the model file (xnorkit.naming)."""
    name = naming.check(name) if name is not None else naming.from_model(model)
    from xnorkit.frontend import import_qonnx, insert_input_quant, read_onnx

    proto = read_onnx(model)
    if input_quant:
        proto = insert_input_quant(proto, input_quant)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as scratch:
        compiled = Path(scratch) / "model.onnx"
        onnx.save(proto, str(compiled), save_as_external_data=False)
        graph = replace(import_qonnx(compiled), name=name)  # fails before anything is written
        with replacing(build, "build", [model]) as tmp:
            ir.save(graph, tmp)
            shutil.copy(compiled, tmp / "model.onnx")
    return graph


def set_exits(build: Path, margins: list[int] | None) -> Graph:
    """Make the build's early exits stop the inference at these integer margin thresholds, one per output
    before the last (numerics.exit_taken); None: every output always computed."""
    graph = load(build)
    exits = graph.outputs[:-1]
    if margins is not None and len(margins) != len(exits):
        raise XnorkitError(f"{build} has {len(exits)} early exit(s) ({', '.join(exits) or 'none'}); give one margin "
                           f"each, not {len(margins)}")
    graph = replace(graph, exits=tuple(zip(exits, margins, strict=True)) if margins is not None else ())
    ir.verify(graph)
    ir.save(graph, build)
    shutil.rmtree(Path(build) / "firmware", ignore_errors=True)  # generated for the old exits: stale
    return graph


def calibrate_exit(build: Path, x: np.ndarray, labels: np.ndarray, allowance: float) -> int:
    """The margin threshold of a build's one early exit, calibrated on held-out inputs (numerics.calibrate_margin;
    predictions are the argmax of each exit's float outputs)."""
    graph = load(build)
    if len(graph.outputs) != 2:
        raise XnorkitError(f"{build} has {len(graph.outputs) - 1} early exits; calibration handles one (give "
                           f"--margin for each instead)")
    values = golden.run(graph, x)
    margins = numerics.exit_margin(graph.class_scores(graph.outputs[0], values[graph.outputs[0]]))
    exit_right = values[graph.float_outputs[0]].reshape(len(x), -1).argmax(1) == labels
    final_right = values[graph.float_outputs[1]].reshape(len(x), -1).argmax(1) == labels
    return numerics.calibrate_margin(margins, exit_right, final_right, allowance)


def backend_graph(build: Path) -> Graph:
    """The build's IR as every backend, estimate and report reads it: the compiled IR through the passes'
    pipeline (xnorkit.passes: constant and unread hidden neurons removed, exact), so structured sparsity shrinks
    the RTL, the HLS C++ and the firmware."""
    from xnorkit import passes

    return passes.pipeline(load(build))


def check_folding(build: Path, graph: Graph, folding) -> None:
    """Refuse, with the numbers, a folding that does not fit the backend graph (one written for the layers as
    compiled, before neurons were removed, says so)."""
    from xnorkit.hw import folding as fold_mod

    try:
        fold_mod.validate(graph, folding)
    except XnorkitError as e:
        compiled = {n.name: n.out_features for n in load(build).nodes if isinstance(n, MatMul)}
        smaller = [f"{n.name} {compiled[n.name]} -> {n.out_features}" for n in graph.nodes
                   if isinstance(n, MatMul) and compiled.get(n.name, n.out_features) != n.out_features]
        note = (f" (the backends build the network without its constant neurons: outputs {', '.join(smaller)}; "
                "`xnorkit inspect` lists them)") if smaller else ""
        raise XnorkitError(f"{e}{note}") from None


def load(build: Path) -> Graph:
    return ir.load(Path(build))


def generate_hw(build: Path, folding=None, target_cycles: int = 128, board: str | Board | None = None,
                exit_rate: float = 0.0, name: str | None = None, writable: str | None = None) -> dict:
    """BUILD/rtl/: the given folding, else the fastest that fits `board` (an FPGA board), else the solver's for
    `target_cycles` (with an early exit, the layers after it for the `exit_rate` share of inputs that stay); its
    modules and files named after `name` (default the model's, xnorkit.naming). `writable` ("all", or layer names
    separated by commas): those layers' weights and thresholds behind the AXI4-Lite port (hw.config_map)."""
    from xnorkit.hw import emit_sv
    from xnorkit.hw import folding as fold_mod

    graph = backend_graph(build)
    if folding is not None:
        check_folding(build, graph, folding)
    if folding is None and board is not None:
        from xnorkit import boards
        from xnorkit.hw import fit

        folding, _ = fit.solve(graph, boards.load_kind(board, "fpga"))
    folding = folding or fold_mod.solve(graph, target_cycles, exit_rate)
    if writable is not None:
        folding = fold_mod.with_writable(graph, folding, writable)
    files = emit_sv.emit(graph, folding, name)
    write_tree(Path(build) / "rtl", files, "rtl")
    return json.loads(files["design.json"])


def weight_writes(build: Path, model: Path, out: Path | None = None,
                  input_quant: str | None = None) -> tuple[Path, int]:
    """The AXI4-Lite writes that load `model` (a retrained QONNX of the same structure) into the build's writable
    layers (hw.reload), as little-endian uint32 pairs (register byte address, value) in `out` (default
    BUILD/weights.bin). Returns the file and the number of writes."""
    from xnorkit import passes
    from xnorkit.frontend import import_qonnx, insert_input_quant, read_onnx
    from xnorkit.hw import emit_sv, reload

    design = emit_sv.load_design(Path(build) / "rtl")
    out = Path(out) if out is not None else Path(build) / "weights.bin"
    check_file(out)  # before compiling the new model
    proto = read_onnx(model)
    if input_quant:
        proto = insert_input_quant(proto, input_quant)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as scratch:
        onnx.save(proto, str(Path(scratch) / "model.onnx"), save_as_external_data=False)
        new = import_qonnx(Path(scratch) / "model.onnx")
    built = load(build)
    if new.outputs == built.outputs:  # the build's early exits and their margins, on the new weights
        new = replace(new, exits=built.exits)
    rows = reload.writes(backend_graph(build), design, passes.pipeline(replace(new, name=built.name)))
    write_file(out, rows.astype("<u4").tobytes())
    return out, len(rows)


def generate_hls(build: Path, folding, board: str | Board | None = None, check_inputs: int = 64) -> tuple[Path, int]:
    """BUILD/hls/: the HLS C++ of the network at `folding`, for `board`'s part and clock (default PYNQ-Z2),
    with `check_inputs` seeded random inputs and golden's outputs for them (inputs.bin, expected.bin), which
    the g++ build is checked against here and Vitis HLS' C simulation reads."""
    from xnorkit import boards
    from xnorkit.hw import emit_hls
    from xnorkit.sim import hls

    graph = backend_graph(build)
    check_folding(build, graph, folding)
    target = boards.load_kind(board or "pynq-z2", "fpga")
    files = emit_hls.emit(graph, folding, target.part, target.clock_mhz)
    out = write_tree(Path(build) / "hls", files, "hls")
    x = golden.random_int_inputs(graph, check_inputs)
    expected = golden.predict_from_int(graph, x)
    outputs = hls.run(out, x, expected.shape[1])
    np.ascontiguousarray(expected, dtype=np.int32).tofile(out / "expected.bin")
    bad = int((outputs != expected).any(axis=1).sum())
    if bad:
        raise XnorkitError(f"the HLS C++ disagrees with golden on {bad} of {check_inputs} inputs ({out})")
    return out, check_inputs


def generate_firmware(build: Path, board: str | Board = "mps2-an386", out: Path | None = None,
                      name: str | None = None) -> tuple[Path, dict]:
    """The C library for `board` in `out` (default BUILD/firmware), its files and symbols named after `name`
    (default the model's); refuses, before writing anything, a network that does not fit the board. Returns the
    folder and the footprint (firmware.emit_c.footprint)."""
    from xnorkit import boards
    from xnorkit.firmware import emit_c

    graph = backend_graph(build)
    lut_bits, need = emit_c.fit(graph, boards.load_kind(board, "mcu"))
    files = emit_c.emit(graph, name=name, lut_bits=lut_bits)
    return write_tree(Path(out) if out else Path(build) / "firmware", files, "firmware"), need


def dequantize(graph: Graph, acc: np.ndarray) -> np.ndarray:
    """The float outputs of integer outputs (several outputs side by side, as golden joins them)."""
    if len(graph.outputs) == 1:
        return golden.dequantize(graph.dequantize_of(graph.output), acc)
    parts, start = [], 0
    for output in graph.outputs:
        size = int(np.prod(graph.shape(output)))
        flat = acc[:, start:start + size].reshape(len(acc), *graph.shape(output))
        parts.append(golden.dequantize(graph.dequantize_of(output), flat).reshape(len(acc), -1))
        start += size
    return np.concatenate(parts, axis=1)


def qonnx_execute(build: Path, x: np.ndarray, every_tensor: bool = False) -> dict[str, np.ndarray]:
    """qonnx's own executor on the QONNX model of a build: the graph output, or every tensor by name."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(Path(build) / "model.onnx")))
    # the export fixes the batch to 1: restate it as len(x) and infer the shapes again
    for vi in list(model.graph.value_info):
        model.graph.value_info.remove(vi)
    name = model.graph.input[0].name
    model.set_tensor_shape(name, [len(x), *model.get_tensor_shape(name)[1:]])
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    for node in model.graph.node:  # flatten shapes carry the exported batch of 1 too
        if node.op_type == "Reshape" and model.get_initializer(node.input[1]) is not None:
            shape = model.get_initializer(node.input[1]).copy()
            if len(shape) and shape[0] == 1:
                shape[0] = len(x)
                model.set_initializer(node.input[1], shape)
    model = model.transform(InferShapes())
    return execute_onnx(model, {name: np.asarray(x, dtype=np.float32)}, return_full_exec_context=every_tensor)


def read_inputs(path: Path) -> np.ndarray:
    """A user's .npy of inputs as float32, or one line saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise XnorkitError(f"input file {path} does not exist")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise XnorkitError(f"cannot read input {path} as a .npy array ({type(e).__name__}: {str(e)[:80]}); save "
                           f"one with numpy.save") from None
    if not isinstance(x, np.ndarray):
        raise XnorkitError(f"input {path} is a .npz archive; give one .npy array (numpy.save)")
    if x.dtype.kind not in "biuf":
        raise XnorkitError(f"input {path} holds {x.dtype} values; give real numbers (float32)")
    return x.astype(np.float32)


def check_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Inputs as the backends take them: (N >= 1, *input shape), finite float32 (docs/numerics.md)."""
    x = np.asarray(x, dtype=np.float32)
    shape = ", ".join(map(str, graph.input_shape))
    if x.ndim < 2 or x.shape[1:] != tuple(graph.input_shape):
        raise XnorkitError(f"input has shape {x.shape}; the model takes (N, {shape})")
    if len(x) == 0:
        raise XnorkitError(f"input holds no rows; the model takes (N, {shape}) with N >= 1")
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        raise XnorkitError(f"input row {int(np.argmin(finite))} holds NaN or infinite values ({int((~finite).sum())} "
                           f"rows); the backends take finite inputs (docs/numerics.md)")
    return x


def predict(build: Path, backend: str, x: np.ndarray, dequantize_output: bool = False,
            simulator: str = "verilator") -> np.ndarray:
    """Run float inputs through one backend: the integer outputs (int64), or float outputs with
    `dequantize_output` (the IR's Dequantize applied to the backend's integers)."""
    build = Path(build)
    graph = load(build)
    if backend not in BACKENDS:
        raise XnorkitError(f"unknown backend {backend[:20]!r}; choose one of {', '.join(BACKENDS)}")
    x = check_inputs(graph, x)
    if backend == "qonnx":
        if not dequantize_output:
            raise XnorkitError("the qonnx backend computes in float; pass --dequantize")
        out = qonnx_execute(build, x)  # the IR keeps the ONNX outputs' names
        parts = [out[t].reshape(len(x), -1) for t in graph.float_outputs]
        return parts[0].reshape(out[graph.float_outputs[0]].shape) if len(parts) == 1 else np.concatenate(parts, 1)
    if backend == "golden":
        return golden.predict_float(graph, x) if dequantize_output else golden.predict_int(graph, x)
    elif backend == "rtl":
        from xnorkit.sim import runner

        if not (build / "rtl" / "design.json").exists():
            generate_hw(build)
        x_int = golden.quantize_input(graph, x)
        # Verilator: the compiled harness (whole test sets); Icarus: the cocotb testbench
        acc = (runner.simulate_bulk(build / "rtl", x_int) if simulator == "verilator"
               else runner.simulate(build / "rtl", x_int, simulator=simulator)).outputs
    elif backend == "hls":
        acc = _predict_hls(build, graph, golden.quantize_input(graph, x))
    elif backend in ("c", "cortex-m4"):
        from xnorkit.firmware import runner as fw

        if not (build / "firmware" / "library.json").exists():
            generate_firmware(build)
        run = fw.run_host if backend == "c" else fw.run_cortex_m4
        acc = run(build / "firmware", x, graph.result_width())
    else:
        raise XnorkitError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if dequantize_output:
        return dequantize(graph, acc[:, :-1] if graph.exits else acc)
    return acc


def _predict_hls(build: Path, graph, x_int: np.ndarray) -> np.ndarray:
    """The HLS C++ under g++ (BUILD/hls/, generated at BUILD/rtl's folding when there is none)."""
    from xnorkit.hw import emit_sv
    from xnorkit.hw import folding as fold_mod
    from xnorkit.sim import hls

    if not (build / "hls" / "xk_model.cpp").exists():
        if not (build / "rtl" / "design.json").exists():
            generate_hw(build)
        generate_hls(build, fold_mod.from_json(emit_sv.load_design(build / "rtl")["folding"]))
    return hls.run(build / "hls", x_int, graph.result_width())


def agreement(ours: np.ndarray, reference: np.ndarray, exact: bool) -> int:
    rows = compare.int_rows_agree(ours, reference) if exact else compare.float_rows_agree(ours, reference)
    return int(rows.sum())


def save_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=1) + "\n")
