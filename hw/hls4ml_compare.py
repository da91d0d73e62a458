"""hls4ml as a peer to compare against (never an oracle): the build's QONNX model through hls4ml's own ONNX
front end and its C++ emulation (compiled with g++), its outputs set beside the golden model's on the same
inputs, so a user sees the difference for themselves (`xnorkit hw BUILD --backend hls4ml`).

The model is prepared as hls4ml's documentation asks (qonnx cleanup, Gemm to MatMul; a bias-less Gemm gets
a zero bias first, which GemmToMatMul requires), then converted twice: hls4ml's default precision and a wide
32-bit fixed point, to tell precision from semantics apart. Output in BUILD/hls4ml/: one project folder per
configuration and comparison.md / comparison.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xnorkit import compare, golden
from xnorkit.errors import XnorkitError
from xnorkit.ir import Graph

CONFIGS = (("hls4ml default", None), ("wide fixed<32,16>", "fixed<32,16>"))


def prepare(model_path: Path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(model_path)))
    for node in model.graph.node:
        if node.op_type == "Gemm" and len(node.input) == 2:
            shape = model.get_tensor_shape(node.input[1])
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            name = f"{node.name}_zero_bias"
            model.set_initializer(name, np.zeros(shape[0] if trans_b else shape[1], dtype=np.float32))
            node.input.append(name)
    return cleanup_model(model.transform(GemmToMatMul()))


def run(build: Path, graph: Graph, x: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Convert, compile and run hls4ml per configuration on float inputs `x`; compare with golden."""
    try:
        import hls4ml
    except ImportError:
        raise XnorkitError("hls4ml is not installed; install it: pip install hls4ml==1.3.0 (`make setup` does "
                           "it)") from None
    build = Path(build)
    out = build / "hls4ml"
    out.mkdir(exist_ok=True)
    reference = golden.predict_float(graph, x)
    rows = []
    for label, precision in CONFIGS:
        model = prepare(build / "model.onnx")
        kwargs = {"default_precision": precision} if precision else {}
        config = hls4ml.utils.config.config_from_onnx_model(model, granularity="name", backend="Vitis", **kwargs)
        folder = out / label.split()[0]
        try:
            hls_model = hls4ml.converters.convert_from_onnx_model(model, output_dir=str(folder), backend="Vitis",
                                                                  hls_config=config)
            hls_model.compile()
            theirs = np.asarray(hls_model.predict(np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)),
                                dtype=np.float64).reshape(reference.shape)
        except Exception as e:  # hls4ml's own failure is a result of the comparison, not ours
            rows.append({"config": label, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"})
            continue
        row = {"config": label, "inputs": len(x),
               "argmax_agree": int((theirs.argmax(1) == reference.argmax(1)).sum()),
               "within_1e-5": int(compare.float_rows_agree(theirs, reference).sum()),
               "max_abs_difference": float(np.abs(theirs - reference).max()),
               "max_relative_error": compare.max_relative_error(theirs, reference)}
        if y is not None:
            row["accuracy"] = float((theirs.argmax(1) == y).mean())
        rows.append(row)
    result = {"inputs": len(x), "golden_accuracy": None if y is None else float((reference.argmax(1) == y).mean()),
              "rows": rows}
    (out / "comparison.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "comparison.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    lines = ["# hls4ml against the golden model", "",
             f"{result['inputs']} inputs; outputs are the dequantized last-layer values (golden.predict_float)."
             + (f" Golden test accuracy {100 * result['golden_accuracy']:.2f}%." if result["golden_accuracy"]
                is not None else ""), "",
             "| hls4ml configuration | argmax agrees | outputs within 1e-5 | largest difference | accuracy |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['config']} | failed: {r['error']} | | | |")
            continue
        acc = f"{100 * r['accuracy']:.2f}%" if "accuracy" in r else ""
        lines.append(f"| {r['config']} | {r['argmax_agree']}/{r['inputs']} | {r['within_1e-5']}/{r['inputs']} | "
                     f"{r['max_abs_difference']:.4g} | {acc} |")
    return "\n".join(lines) + "\n"
