"""Datasets: scikit-learn digits (bundled, the offline default) and MNIST from the standard IDX files.

Data directory: --data-dir, else $XNORKIT_DATA, else ~/.cache/xnorkit.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorkit.errors import XnorkitError

SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray  # float32, raw values in the layout the model takes
    y_train: np.ndarray  # int64 labels
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W) of one image; x_* hold them flattened


def data_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("XNORKIT_DATA"):
        return Path(os.environ["XNORKIT_DATA"])
    return Path.home() / ".cache" / "xnorkit"


def load_digits() -> Dataset:
    """The 1797 8x8 digits, pixels 0..16 as float32 (N, 64); a fixed, seeded, stratified 75/25 split."""
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    d = sk_load()
    x = d.data.astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=SPLIT_SEED)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, 10, (1, 8, 8))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(directory: str | Path | None = None) -> Dataset:
    """MNIST from <data dir>/mnist/*-idx?-ubyte.gz: pixels 0..255 as float32 (N, 784)."""
    root = data_dir(directory) / "mnist"
    files = {
        "x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [f for f in files.values() if not (root / f).is_file()]
    if missing:
        raise XnorkitError(f"MNIST files missing in {root}: {', '.join(missing)}; put the standard IDX .gz "
                           f"files there or pass --data-dir")
    arrays = {k: _read_idx(root / f) for k, f in files.items()}
    return Dataset(
        "mnist",
        arrays["x_train"].reshape(-1, 784).astype(np.float32), arrays["y_train"].astype(np.int64),
        arrays["x_test"].reshape(-1, 784).astype(np.float32), arrays["y_test"].astype(np.int64), 10, (1, 28, 28),
    )


def load(name: str, directory: str | Path | None = None) -> Dataset:
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(directory)
    raise XnorkitError(f"unknown dataset '{name}'; choose digits or mnist")
