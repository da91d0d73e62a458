"""Conditional computation: MAC counting, entropy cascades, ACT halting and the D2NN cascade."""

import numpy as np
import torch

from tests.conftest import check_exact
from xnorkit.quant_train import conditional, data, train, zoo


def test_count_macs_of_lenet5():
    model = zoo.build("lenet5", 1, 1, (1, 28, 28), 10, 8)
    # conv 5x5x1 -> 6 at 28x28, conv 5x5x6 -> 16 at 14x14, fc 784 -> 120 -> 84 -> 10
    expected = 28 * 28 * 6 * 25 + 14 * 14 * 16 * 150 + 784 * 120 + 120 * 84 + 84 * 10
    assert conditional.count_macs(model, torch.zeros(1, 1, 28, 28)) == expected


def test_entropy_cascade_and_calibration():
    uniform, sure = np.zeros((1, 4)), np.array([[10.0, 0, 0, 0]])
    assert np.isclose(conditional.entropy(uniform)[0], np.log(4))
    exits = [np.concatenate([sure, uniform]), np.array([[0, 5.0, 0, 0], [0, 0, 5.0, 0]])]
    predictions, taken = conditional.cascade(exits, [0.5])
    assert taken.tolist() == [0, 1] and predictions.tolist() == [0, 2]
    assert conditional.average_cost(taken, [10, 30]) == 20.0
    labels = np.array([1, 2])  # the early answer of the sure input is wrong: no threshold admits it
    assert conditional.calibrate_single_exit(exits[0], exits[1], labels, 0.0) == -1.0
    assert conditional.calibrate_single_exit(exits[0], exits[1], labels, 0.5) == conditional.entropy(sure)[0]


def test_act_step_weights_sum_to_one():
    torch.manual_seed(0)
    scores = torch.rand(5, 7) * 0.6
    cumulative, total, executed, remainder = torch.zeros(7), torch.zeros(7), torch.zeros(7), torch.zeros(7)
    for b in range(5):
        w, cumulative, ran, rem = conditional.act_step(scores[b], cumulative, b == 4, 0.01)
        total, executed, remainder = total + w, executed + ran, remainder + rem
    assert torch.allclose(total, torch.ones(7))
    # a unit runs until its scores reach 1 - epsilon: that block count is what runs at inference
    expected = [min(5, int((torch.cumsum(scores[:, i], 0) < 0.99).sum()) + 1) for i in range(7)]
    assert executed.tolist() == expected


def test_act_resnet_halts_and_counts():
    torch.manual_seed(0)
    for mode in ("act", "sact"):
        model = zoo.ACTResNet((1, 8, 8), 10, mode, blocks=3)
        for layer in model.halt_global:
            torch.nn.init.constant_(layer.bias, 5.0)  # halts at once
        model.eval()
        with torch.no_grad():
            model(torch.rand(4, 1, 8, 8))
        assert torch.allclose(model.executed, torch.ones(4))


def test_d2nn_control_decision_compiles_exactly(tmp_path):
    digits = data.load_digits()
    x, y = torch.from_numpy(digits.x_train), torch.from_numpy(digits.y_train)
    model = zoo.D2NN(64, 10, small=16, large=[32], w_bits=2, a_bits=2, input_bits=5)
    conditional.train_branches(model, x, y, epochs=2, lr=0.01, seed=0)
    model.init_control(x[:200])
    assert torch.equal(model.control[0][0].weight, model.small_head[0].weight)
    out = train.evaluate(model, digits.x_train, every_exit=True)
    rewards = conditional.d2nn_rewards(out[:, :10], out[:, 12:], digits.y_train, 1000, 3000, 0.5)
    assert rewards.shape == (len(y), 2)
    before = [p.detach().clone() for p in model.branch_parameters()]
    conditional.q_learning(model, x, torch.from_numpy(rewards), epochs=3, lr=0.01, epsilon=0.3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.branch_parameters(), strict=True))
    graph, ours = check_exact(model, digits.x_test[:100], tmp_path, calibrate=0)
    assert len(graph.outputs) == 3
    ref = train.evaluate(model, digits.x_test[:100], every_exit=True)
    assert np.array_equal(ours[:, 10:12].argmax(1), ref[:, 10:12].argmax(1))  # the same decisions
