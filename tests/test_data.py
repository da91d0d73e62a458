"""Datasets: digits split, MNIST from IDX files (the shared copy), download and checksum verification
(through a file:// mirror: tests never leave this machine)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import IN_CI
from xnorkit.errors import XnorkitError
from xnorkit.quant_train import data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def test_digits_split_is_fixed_and_stratified():
    d = data.load_digits()
    assert len(d.x_test) == 450 and d.x_train.shape == (1347, 64) and d.image_shape == (1, 8, 8)
    assert d.x_train.max() == 16
    per_class = np.bincount(np.concatenate([d.y_train, d.y_test]))
    assert (np.abs(np.bincount(d.y_test) - per_class / 4) <= 1).all()  # stratified: a quarter of each class
    assert np.array_equal(data.load_digits().y_test, d.y_test)


def _shared_mnist() -> Path:
    if not (SHARED / "mnist").is_dir():
        if IN_CI:
            pytest.fail(f"MNIST is missing in {SHARED / 'mnist'}")
        pytest.skip("no shared MNIST copy beside the checkout")
    return SHARED


def test_mnist_from_idx_files():
    d = data.load_mnist(_shared_mnist(), download=False)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.max() == 255 and np.bincount(d.y_test).sum() == 10000


def test_mnist_download_verifies_checksums(tmp_path, monkeypatch):
    mirror = _shared_mnist() / "mnist"
    monkeypatch.setenv("XNORKIT_MNIST_URL", mirror.as_uri())
    monkeypatch.setattr(data, "MNIST_MIRRORS", ())  # no real network in tests
    d = data.load_mnist(tmp_path)
    assert len(d.x_test) == 10000
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(data.MNIST_MD5)


def test_mnist_corrupt_or_missing_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MNIST_MIRRORS", ())
    monkeypatch.delenv("XNORKIT_MNIST_URL", raising=False)
    with pytest.raises(XnorkitError, match="MNIST files missing in .*put the standard IDX"):
        data.load_mnist(tmp_path)
    shutil.copytree(_shared_mnist() / "mnist", tmp_path / "m" / "mnist")
    (tmp_path / "m" / "mnist" / "t10k-labels-idx1-ubyte.gz").chmod(0o644)
    (tmp_path / "m" / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not mnist")
    with pytest.raises(XnorkitError, match="is corrupt"):
        data.load_mnist(tmp_path / "m", download=False)


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("XNORKIT_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path and data.data_dir("/x") == Path("/x")
    monkeypatch.delenv("XNORKIT_DATA")
    assert data.data_dir() == Path.home() / ".cache" / "xnorkit"
