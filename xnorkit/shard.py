"""`predict --workers W / --address ADDR`: long verification runs (the RTL simulator, QEMU) sharded over Ray
tasks. The build's files travel with the tasks (Ray's object store), so a task on another node needs nothing
of this machine's disk; each task unpacks them in a folder of its own and runs the serial backend there, with
its own simulator build or QEMU. The outputs are the serial run's, in input order."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from xnorkit import build as build_mod
from xnorkit import tools
from xnorkit.errors import XnorkitError

# what a backend rebuilds for itself: not shipped
DERIVED = ("sim_build", "synth", "hls4ml", "report")
SHARDED = ("rtl", "hls", "c", "cortex-m4")


def _pack(build: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(build.rglob("*")):
        rel = path.relative_to(build)
        if path.is_file() and not set(rel.parts[:-1]) & set(DERIVED) and rel.parts[:2] != ("firmware", "build"):
            files[rel.as_posix()] = path.read_bytes()
    return files


def _prepare(build: Path, backend: str) -> None:
    """The backend's sources generated here, once, as the serial run would (not once per task)."""
    if backend in ("rtl", "hls") and not (build / "rtl" / "design.json").exists():
        build_mod.generate_hw(build)
    if backend in ("c", "cortex-m4") and not (build / "firmware" / "library.json").exists():
        build_mod.generate_firmware(build)


def _shard_task(files: dict[str, bytes], backend: str, x: np.ndarray, dequantize: bool, simulator: str) -> np.ndarray:
    work = Path(tempfile.mkdtemp(prefix="xnorkit-shard-"))
    try:
        for rel, data in files.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(data)
        return build_mod.predict(work, backend, x, dequantize, simulator)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def predict(build: Path, backend: str, x: np.ndarray, dequantize: bool = False, simulator: str = "verilator",
            workers: int | None = None, address: str | None = None) -> np.ndarray:
    """build.predict's outputs, the inputs split into one contiguous shard per Ray worker (at most `workers`)."""
    if backend not in SHARDED:
        raise XnorkitError(f"--workers shards the simulated backends ({', '.join(SHARDED)}); the {backend} backend "
                           "runs in this process: leave --workers and --address out")
    tools.require_extra("ray")
    import ray

    from xnorkit import explore

    build = Path(build)
    x = build_mod.check_inputs(build_mod.load(build), x)
    _prepare(build, backend)
    started, slots = explore.start_ray(address, workers)
    try:
        files = ray.put(_pack(build))
        task = ray.remote(num_cpus=1, max_retries=0)(_shard_task)
        shards = [part for part in np.array_split(x, min(slots, len(x))) if len(part)]
        refs = [task.remote(files, backend, part, dequantize, simulator) for part in shards]
        try:
            results = ray.get(refs)
        except ray.exceptions.RayTaskError as e:  # the backend's own one-line error, raised in the task
            if isinstance(e.cause, XnorkitError):
                raise XnorkitError(str(e.cause)) from None
            raise XnorkitError(f"a shard failed: {type(e.cause).__name__}: {str(e.cause)[:300]}") from None
        return np.concatenate(results)
    finally:
        if started:
            ray.shutdown()
