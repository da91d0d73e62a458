"""The HLS backend's C++ (hw/emit_hls.py) compiled with plain g++ and run on integer inputs: the same
source Vitis HLS synthesizes, checked against the golden model without any vendor tool."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np

from xnorkit import layout, tools
from xnorkit.errors import XnorkitError

FLAGS = ["-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas"]


def build(hls_dir: Path) -> Path:
    """g++ of xk_model.cpp and the testbench (cached by source digest). Returns the executable."""
    hls_dir = Path(hls_dir)
    sources = [hls_dir / "xk_model.cpp", hls_dir / "xk_hls_tb.cpp"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in [*sources, hls_dir / "xk_weights.h",
                                                                hls_dir / "xk_hls.h"])).hexdigest()
    exe, stamp = hls_dir / "xk_hls_tb", hls_dir / ".build.sha256"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        return exe
    gxx = tools.require("g++")
    proc = subprocess.run([gxx, *FLAGS, "-I", str(hls_dir), *map(str, sources), "-o", str(exe)], capture_output=True,
                          text=True)
    if proc.returncode:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
        raise XnorkitError(f"g++ build of the HLS C++ in {hls_dir} failed: {first}")
    stamp.write_text(digest)
    return exe


def run(hls_dir: Path, x_int: np.ndarray, n_out: int) -> np.ndarray:
    """Outputs (N, n_out) of the HLS C++ for integer inputs (N, features), both in the IR's order (the C++ takes
    and gives them in their stream order, stream.json)."""
    hls_dir = Path(hls_dir)
    exe = build(hls_dir)
    streams = json.loads((hls_dir / "stream.json").read_text())
    x = np.ascontiguousarray(layout.stream_order(np.asarray(x_int).reshape(len(x_int), -1), streams["input"]),
                             dtype=np.int32)
    (hls_dir / "inputs.bin").write_bytes(x.tobytes())
    proc = subprocess.run([str(exe), str(hls_dir / "inputs.bin"), str(hls_dir / "outputs.bin")], capture_output=True,
                          text=True)
    if proc.returncode:
        raise XnorkitError(f"the HLS testbench failed: {proc.stderr.strip()}")
    out = np.fromfile(hls_dir / "outputs.bin", dtype=np.int32).reshape(len(x), n_out).astype(np.int64)
    return layout.ir_order(out, streams["output"])
