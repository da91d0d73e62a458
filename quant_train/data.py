"""Datasets: scikit-learn digits (bundled, the offline default) and MNIST from the standard IDX files.

Data directory: --data-dir, else $XNORKIT_DATA, else ~/.cache/xnorkit.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from xnorkit.errors import XnorkitError

SPLIT_SEED = 0

# The standard MNIST files and their published checksums.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# Where missing files are fetched from, in order; $XNORKIT_MNIST_URL (a base URL) comes first.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/")


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


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _download(name: str, root: Path) -> bool:
    """Fetch one file from the first mirror that has it with the right checksum; False when none does."""
    mirrors = [os.environ["XNORKIT_MNIST_URL"]] if os.environ.get("XNORKIT_MNIST_URL") else []
    for base in [*mirrors, *MNIST_MIRRORS]:
        tmp = Path(tempfile.mkstemp(prefix=f".{name}-", dir=root)[1])
        try:
            with urllib.request.urlopen(base.rstrip("/") + "/" + name, timeout=30) as response, tmp.open("wb") as f:
                shutil.copyfileobj(response, f)
            if _md5(tmp) == MNIST_MD5[name]:
                tmp.rename(root / name)
                return True
        except (OSError, ValueError):
            pass  # offline, or this mirror does not have it: try the next
        finally:
            tmp.unlink(missing_ok=True)
    return False


def load_mnist(directory: str | Path | None = None, download: bool = True) -> Dataset:
    """MNIST from <data dir>/mnist/*-idx?-ubyte.gz: pixels 0..255 as float32 (N, 784). Missing files are
    downloaded when the machine is online; every file is checked against the standard MD5 checksums."""
    root = data_dir(directory) / "mnist"
    missing = [f for f in MNIST_MD5 if not (root / f).is_file()]
    if missing and download:
        root.mkdir(parents=True, exist_ok=True)
        missing = [f for f in missing if not _download(f, root)]
    if missing:
        raise XnorkitError(f"MNIST files missing in {root}: {', '.join(missing)}; put the standard IDX .gz files "
                           f"there (or point --data-dir / $XNORKIT_DATA at a folder with mnist/ in it)")
    for name, digest in MNIST_MD5.items():
        if _md5(root / name) != digest:
            raise XnorkitError(f"{root / name} is corrupt (MD5 differs from the standard {digest}); replace it")
    files = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
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


def batches(n: int, batch_size: int, generator: torch.Generator):
    """Index tensors of one epoch's shuffled minibatches; a last batch of one is skipped (batch-norm needs two)."""
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        if len(idx) >= 2:
            yield idx
