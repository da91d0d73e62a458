"""SFC W1A1 (784 -> 3 x 256 -> 10, binary weights and activations) on MNIST.
Goal: >= 97.5% test accuracy (Brevitas' bnn_pynq reports 97.81%)."""

import sys

from _zoo_mnist import run

if __name__ == "__main__":
    sys.exit(run("train_sfc_w1a1", "sfc", "binary", 1, epochs=40, lr=0.01, dropout=0.2, goal=0.975,
                 published={"Brevitas bnn_pynq": 0.9781}))
