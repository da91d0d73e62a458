"""`xnorkit verify`: every backend against the golden model on the user's own inputs, exactly, in a form CI systems
read (JUnit XML: one test case per backend, the first differing input named). docs/ci.md has workflows."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xnorkit import build as build_mod
from xnorkit import compare, golden
from xnorkit.errors import XnorkitError

INTEGER_BACKENDS = ("rtl", "hls", "c", "cortex-m4")  # the backends that compute golden's integers
DEFAULT_BACKENDS = ("rtl", "c", "cortex-m4")


@dataclass(frozen=True)
class BackendCheck:
    """One backend's outputs against golden's: how many inputs agree on every output, the first that does not
    (its index and the largest difference there), or why the backend could not run."""

    backend: str
    inputs: int
    agree: int
    seconds: float
    first_difference: int | None = None
    largest_difference: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.agree == self.inputs

    def message(self) -> str:
        if self.error is not None:
            return f"{self.backend} could not run: {self.error}"
        if self.ok:
            return f"{self.backend}: all {self.inputs} inputs equal golden"
        return (f"{self.backend}: {self.inputs - self.agree} of {self.inputs} inputs differ from golden; the first is "
                f"input {self.first_difference} (largest difference {self.largest_difference})")


@dataclass(frozen=True)
class Verification:
    build: Path
    checks: list[BackendCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def junit_xml(self) -> str:
        """JUnit XML: a test suite of one case per backend; a difference is a <failure>, a backend that could not
        run (a missing tool) an <error>."""
        suite = ET.Element("testsuite", name="xnorkit verify", tests=str(len(self.checks)),
                           failures=str(sum(c.error is None and not c.ok for c in self.checks)),
                           errors=str(sum(c.error is not None for c in self.checks)),
                           time=f"{sum(c.seconds for c in self.checks):.3f}")
        for c in self.checks:
            case = ET.SubElement(suite, "testcase", classname=f"xnorkit.verify.{self.build.name}", name=c.backend,
                                 time=f"{c.seconds:.3f}")
            if c.error is not None:
                ET.SubElement(case, "error", message=c.message())
            elif not c.ok:
                ET.SubElement(case, "failure", message=c.message()).text = (
                    f"build {self.build}: input {c.first_difference} is the first of {c.inputs - c.agree} differing "
                    f"inputs")
        ET.indent(suite)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def verify(build: str | Path, x: np.ndarray, backends: tuple[str, ...] | list[str] = DEFAULT_BACKENDS) -> Verification:
    """Run the float inputs `x` (N, *input shape) through each backend and compare its integer outputs with golden's,
    exactly. A backend that cannot run here (a missing tool) is recorded as an error, never skipped."""
    unknown = [b for b in backends if b not in INTEGER_BACKENDS]
    if unknown or not backends:
        raise XnorkitError(f"--backends: {', '.join(unknown) or 'none given'}; choose among "
                           f"{', '.join(INTEGER_BACKENDS)} (comma-separated)")
    build = Path(build)
    graph = build_mod.load(build)
    x = build_mod.check_inputs(graph, np.asarray(x))
    expected = golden.predict_int(graph, x)
    return Verification(build, [_check(build, backend, x, expected) for backend in backends])


def _check(build: Path, backend: str, x: np.ndarray, expected: np.ndarray) -> BackendCheck:
    t0 = time.perf_counter()
    try:
        ours = build_mod.predict(build, backend, x)
    except XnorkitError as e:
        return BackendCheck(backend, len(x), 0, time.perf_counter() - t0, error=str(e))
    seconds = time.perf_counter() - t0
    rows = compare.int_rows_agree(ours, expected)
    bad = np.flatnonzero(~rows)
    if len(bad) == 0:
        return BackendCheck(backend, len(x), len(x), seconds)
    first = int(bad[0])
    largest = int(np.abs(np.asarray(ours[first], dtype=np.int64) - expected[first]).max())
    return BackendCheck(backend, len(x), int(rows.sum()), seconds, first, largest)
