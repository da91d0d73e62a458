import json

import numpy as np
import pytest

from tests.conftest import random_graph
from xnorkit import golden, ir
from xnorkit.errors import XnorkitError


def test_save_load_round_trip(tmp_path):
    g = random_graph([16, 32, 8], seed=1)
    ir.save(g, tmp_path)
    loaded = ir.load(tmp_path)
    assert [type(n) for n in loaded.nodes] == [type(n) for n in g.nodes]
    x = np.random.default_rng(0).integers(0, 32, size=(10, 16)).astype(np.float32)
    assert np.array_equal(golden.predict_int(loaded, x), golden.predict_int(g, x))
    assert np.array_equal(golden.predict_float(loaded, x), golden.predict_float(g, x))


def test_other_format_version_is_refused(tmp_path):
    ir.save(random_graph([16, 8], seed=1), tmp_path)
    doc = json.loads((tmp_path / "ir.json").read_text())
    doc["format_version"] = 99
    (tmp_path / "ir.json").write_text(json.dumps(doc))
    with pytest.raises(XnorkitError, match="format version 99"):
        ir.load(tmp_path)


def test_verify_rejects_non_binary_weights():
    g = random_graph([16, 8], seed=1)
    g.nodes[1].weights[0, 0] = 0
    with pytest.raises(XnorkitError, match="-1/\\+1"):
        ir.verify(g)
