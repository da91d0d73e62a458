import pytest

from xnorkit.errors import XnorkitError
from xnorkit.quant_train import config


@pytest.mark.parametrize("text,message", [
    ("model:\n  hiddn: [8]\n", "unknown key 'model.hiddn'"),
    ("train:\n  lr: -1\n", "'train.lr': Input should be greater than 0"),
    ("model:\n  weights: int9\n", "'model.weights': must be one of binary, xnor, ternary"),
    ("hw:\n  simulator: xsim\n", "'hw.simulator'"),
    ("dataset: cifar\n", "'dataset'"),
    ("model:\n  a_bits: '2'\n", "'model.a_bits': Input should be a valid integer"),
    ("- 1\n", "the top level must be a mapping"),
])
def test_bad_configs_are_one_line_naming_the_key(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(XnorkitError, match=message.replace("(", r"\(")) as e:
        config.load(tmp_path / "c.yaml")
    assert "\n" not in str(e.value)


def test_a_good_config(tmp_path):
    (tmp_path / "c.yaml").write_text("dataset: mnist\nmodel: {kind: lenet5, weights: ternary, a_bits: 2}\n"
                                     "train: {epochs: 3, lr: 1}\n")
    cfg = config.load(tmp_path / "c.yaml")
    assert cfg.model.w_bits == "t" and cfg.train.lr == 1.0 and cfg.model.hidden == [256, 256]
    assert config.load(None) == config.DEFAULT
