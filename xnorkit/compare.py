"""How outputs are compared. Integers: exactly. Floats (only against float references such as Brevitas
and qonnx): each element within `rtol` of the largest magnitude in its output vector, since outputs
near zero carry the absolute rounding error of the larger terms that cancelled there."""

from __future__ import annotations

import numpy as np

FLOAT_RTOL = 1e-5


def float_rows_agree(ours: np.ndarray, reference: np.ndarray, rtol: float = FLOAT_RTOL) -> np.ndarray:
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.maximum(np.abs(reference).max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return (np.abs(ours - reference) <= rtol * scale).all(axis=1)


def max_relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    scale = np.maximum(np.abs(reference).max(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return float((np.abs(np.asarray(ours, dtype=np.float64) - reference) / scale).max())


def int_rows_agree(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (np.asarray(ours) == np.asarray(reference)).all(axis=1)
