"""TFC W2A2 (784 -> 3 x 64 -> 10, 2-bit weights with per-channel scales, 2-bit activations) on MNIST.
Goal: >= 96.0% test accuracy (Brevitas' bnn_pynq reports 96.60%)."""

import sys

from _zoo_mnist import run

if __name__ == "__main__":
    sys.exit(run("train_tfc_w2a2", "tfc", "int2", 2, epochs=20, lr=0.01, dropout=0.0, goal=0.96,
                 published={"Brevitas bnn_pynq": 0.966}))
