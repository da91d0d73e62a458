"""Deep Compression (Han, Mao, Dally 2016) on LeNet-300-100 (784 -> 300 -> 100 -> 10, float, MNIST):
iterative magnitude pruning with retraining, trained weight sharing (k-means, linear initialization,
centroid fine-tuning) and Huffman coding of the codebook indices and of the relative sparse-index gaps.
The compression ratio is exact: 32-bit dense weights and biases against every stored bit (Huffman
payloads, code tables, codebooks, biases). Goal: >= 35x at an accuracy drop of at most 0.3 points against
the float model trained by this script (paper: 40x, 1.64% -> 1.58% error).

The schedule is fixed in advance (the paper's per-layer densities: 8%, 9%, 26%; 6-bit codebooks); nothing
is selected on the test set. The one choice made by measurement, how long to retrain after the last pruning
step, was made on the validation split (`--validation`: train on 55,000 images, measure on the other 5,000;
seeds 1-3): 4 epochs lost 0.30/0.36/0.20 points, 12 epochs 0.06/0.24/0.04 (35.0-35.4x), 6 pruning steps of 4
epochs 0.18/0.24/0.28; 12 had the smallest loss with every seed within both goals. The bench runs seed 0
(`--seed`), set before the initial weights are drawn: the same figures on every run on one machine (torch's
own seed is random per process; a different thread count changes the float sums, so other machines may
differ in the last digits).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xnorkit.quant_train import compression, config, data, train, zoo  # noqa: E402

KEEP = {"net.0": 0.08, "net.2": 0.09, "net.4": 0.26}  # the paper's LeNet-300-100 densities
PRUNE_STEPS = 4
RETRAIN_EPOCHS = 4
FINAL_RETRAIN_EPOCHS = 12  # after the last pruning step (chosen on the validation split: --validation)
SHARE_BITS = {"net.0": 6, "net.2": 6, "net.4": 6}
FLOAT_EPOCHS = 20


def accuracy(model, x, y) -> float:
    return float((train.evaluate(model, x).argmax(1) == y).mean())


def split(validation: bool) -> data.Dataset:
    """MNIST scaled to [0, 1]: train on all 60,000 and measure on the test set, or (`validation`, for choosing a
    schedule) train on the first 55,000 and measure on the last 5,000 training images."""
    raw = data.load_mnist()
    if validation:
        return data.Dataset("mnist", raw.x_train[:55000] / 255, raw.y_train[:55000], raw.x_train[55000:] / 255,
                            raw.y_train[55000:], 10, raw.image_shape)
    return data.Dataset("mnist", raw.x_train / 255, raw.y_train, raw.x_test / 255, raw.y_test, 10, raw.image_shape)


def compress(mnist: data.Dataset, seed: int) -> tuple[dict, list]:
    """Train the float model, prune, share and fine-tune; the accuracies (on `mnist`'s test part) and the
    per-layer size report."""
    base = config.Config(dataset="mnist", model=config.ModelConfig(kind="lenet300"))

    def cfg(epochs: int, lr: float) -> config.Config:
        return base.model_copy(update={"train": config.TrainConfig(epochs=epochs, batch_size=128, lr=lr,
                                                                   seed=seed)})

    def measured(model) -> float:
        return accuracy(model, mnist.x_test, mnist.y_test)

    train.seed_everything(seed)  # the initial weights too: torch seeds itself at random in each process
    model, _ = train.train(cfg(FLOAT_EPOCHS, 1e-3), mnist, model=zoo.FloatMLP(784, [300, 100], 10, norm=False))
    acc = {"float": measured(model)}
    print(f"float LeNet-300-100, {FLOAT_EPOCHS} epochs: {acc['float']:.2%} (paper 98.36%)")
    for step in range(1, PRUNE_STEPS + 1):
        keep = {name: target ** (step / PRUNE_STEPS) for name, target in KEEP.items()}
        compression.set_masks(model, compression.magnitude_masks(model, keep))
        epochs = FINAL_RETRAIN_EPOCHS if step == PRUNE_STEPS else RETRAIN_EPOCHS
        model, _ = train.train(cfg(epochs, 5e-4), mnist, model=model, after_step=compression.apply_masks)
        dens = compression.density(model)
        print(f"prune step {step}: density " + ", ".join(f"{n} {d:.1%}" for n, d in dens.items())
              + f"; {epochs} epochs; {measured(model):.2%}")
    acc["pruned"] = measured(model)
    compression.share_weights(model, SHARE_BITS)
    print(f"weight sharing (6-bit codebooks), before centroid fine-tuning: {measured(model):.2%}")
    model, _ = train.train(cfg(RETRAIN_EPOCHS, 1e-4), mnist, model=model)
    compression.bake(model)
    acc["compressed"] = measured(model)
    return acc, compression.size_report(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--validation", action="store_true",
                        help="measure on the last 5,000 training images (choosing a schedule), not the test set")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    acc, report = compress(split(args.validation), args.seed)
    print(f"\n{'layer':8s} {'weights':>8s} {'nonzero':>8s} {'index b':>8s} {'gap b':>7s} {'tables':>7s} "
          f"{'codebook':>8s} {'bias':>6s} {'ratio':>7s}")
    for r in report:
        print(f"{r.name:8s} {r.weights:8d} {r.nonzero:8d} {r.index_bits:8d} {r.gap_bits:7d} {r.table_bits:7d} "
              f"{r.codebook_bits:8d} {r.bias_bits:6d} {r.dense_bits / r.total_bits:6.1f}x")
    dense = sum(r.dense_bits for r in report)
    stored = sum(r.total_bits for r in report)
    ratio = dense / stored
    drop = 100 * (acc["float"] - acc["compressed"])
    measured_on = "validation" if args.validation else "test"
    print(f"dense float32 {dense // 8} bytes -> compressed {-(-stored // 8)} bytes: {ratio:.1f}x (paper 40x)")
    print(f"{measured_on} accuracy: float {acc['float']:.2%}, pruned {acc['pruned']:.2%}, pruned + shared + "
          f"Huffman {acc['compressed']:.2%} (drop {drop:.2f} points, goal <= 0.3)")
    print(f"weights kept: {sum(r.nonzero for r in report) / sum(r.weights for r in report):.1%} (paper 8%)")
    result = {"bench": "deep_compression_lenet300", "seed": args.seed, "measured_on": measured_on,
              "float_accuracy": round(acc["float"], 4), "pruned_accuracy": round(acc["pruned"], 4),
              "compressed_accuracy": round(acc["compressed"], 4), "drop_points": round(drop, 2),
              "compression_ratio": round(ratio, 1), "dense_bytes": dense // 8,
              "compressed_bytes": -(-stored // 8), "paper_ratio": 40.0,
              "seconds": round(time.perf_counter() - t0, 1),
              "ok": bool(ratio >= 35 and drop <= 0.3)}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
