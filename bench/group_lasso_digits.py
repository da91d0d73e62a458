"""Group lasso (SSL over neurons) on digits: hidden neurons removed physically, accuracy against the same
network trained without the penalty by this script. Goal: >= 40% of hidden neurons removed at an
accuracy loss of at most 1 point.

The pruned network is retrained with the unpenalized baseline as its teacher (distillation). The
pruning threshold is chosen on a validation split of the training set (never on the test set): the
largest removal whose validation accuracy stays within 1 point of the baseline's.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit import analysis, build, golden  # noqa: E402
from xnorkit.quant_train import config, data, sparsity, train  # noqa: E402

PENALTIES = (1.5e-4, 2e-4)
THRESHOLDS = (0.1, 0.15, 0.2)
FINE_TUNE = {"epochs": 40, "lr": 0.003}
HIDDEN = (256, 256, 256)
MARGIN = 0.01  # the goal's own allowance, applied to validation accuracy


def accuracy(model, x, y) -> float:
    return float((train.evaluate(model, x).argmax(1) == y).mean())


def compiled(model, digits) -> tuple[float, int, list[int]]:
    """The golden model's test accuracy, MACs per inference and hidden sizes of `model`'s compiled export."""
    with tempfile.TemporaryDirectory() as tmp:
        train.export_qonnx(model, (64,), Path(tmp) / "m.onnx")
        graph = build.compile_model(Path(tmp) / "m.onnx", Path(tmp) / "b")
    accuracy_golden = float((golden.predict_float(graph, digits.x_test).argmax(1) == digits.y_test).mean())
    macs = sum(r.macs for r in analysis.layer_stats(graph))
    return accuracy_golden, macs, [m.out_features for m in graph.matmuls()[:-1]]


def main() -> int:
    t0 = time.perf_counter()
    digits = data.load_digits()
    x_fit, x_val, y_fit, y_val = train_test_split(digits.x_train, digits.y_train, test_size=0.2,
                                                  stratify=digits.y_train, random_state=1)
    fit = data.Dataset("digits", x_fit, y_fit, x_val, y_val, 10, digits.image_shape)
    # the network is pinned here: the digits default (config.ModelConfig.hidden) is sized for boards and moves
    cfg = config.Config(model=config.ModelConfig(hidden=list(HIDDEN)))
    finetune = cfg.model_copy(update={"train": cfg.train.model_copy(update=FINE_TUNE)})

    baseline, _ = train.train(cfg, fit)
    base_val, base_test = accuracy(baseline, x_val, y_val), accuracy(baseline, digits.x_test, digits.y_test)

    candidates = []
    for penalty in PENALTIES:
        sparse, _ = train.train(cfg, fit, regularizer=sparsity.neuron_group_lasso, reg_weight=penalty)
        for threshold in THRESHOLDS:
            small, removed = sparsity.prune_by_gamma(copy.deepcopy(sparse), threshold)
            # retrain the pruned network with the unpenalized baseline as its teacher
            small, _ = train.train(finetune, fit, model=small, teacher=baseline, temperature=2.0, alpha=0.5)
            val = accuracy(small, x_val, y_val)
            print(f"  penalty {penalty:g}, threshold {threshold:.2f}: {removed:6.1%} of hidden neurons removed, "
                  f"validation {val:.2%}")
            candidates.append((removed, val, (penalty, threshold), small))
    ok_candidates = [c for c in candidates if c[1] >= base_val - MARGIN] or [max(candidates, key=lambda c: c[1])]
    removed, val, (penalty, threshold), chosen = max(ok_candidates, key=lambda c: c[0])
    test = accuracy(chosen, digits.x_test, digits.y_test)

    golden_test, macs, hidden = compiled(chosen, digits)  # the removed neurons are gone from the compiled network
    base_golden, base_macs, base_hidden = compiled(baseline, digits)

    loss_points = 100 * (base_test - test)
    print(f"baseline (no penalty)     hidden {'-'.join(map(str, base_hidden))}  test {base_test:.2%} "
          f"(golden {base_golden:.2%})  validation {base_val:.2%}")
    print(f"group lasso + removal     hidden {'-'.join(map(str, hidden))}  test {test:.2%} (golden {golden_test:.2%})"
          f"  penalty {penalty:g}, threshold {threshold}")
    print(f"hidden neurons removed    {removed:.1%}   (goal >= 40%)")
    print(f"accuracy loss             {loss_points:.2f} points   (goal <= 1)")
    print(f"MACs per inference        {macs:,} vs {base_macs:,} ({base_macs / macs:.2f}x fewer)")
    result = {"bench": "group_lasso_digits", "baseline_accuracy": round(base_test, 4), "accuracy": round(test, 4),
              "golden_accuracy": round(golden_test, 4), "neurons_removed": round(removed, 4), "hidden": hidden,
              "baseline_hidden": base_hidden, "penalty": penalty, "threshold": threshold,
              "accuracy_loss_points": round(loss_points, 2), "mac_reduction": round(base_macs / macs, 2),
              "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(removed >= 0.4 and loss_points <= 1.0 and golden_test == test)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
