"""LFC W1A1 (784 -> 3 x 1024 -> 10, binary weights and activations) on MNIST.
Goal: >= 98.4% test accuracy (FINN paper 98.4%; Brevitas' bnn_pynq 98.88%)."""

import sys

from _zoo_mnist import run

if __name__ == "__main__":
    sys.exit(run("train_lfc_w1a1", "lfc", "binary", 1, epochs=40, lr=0.01, dropout=0.2, goal=0.984, shift=1,
                 published={"FINN paper": 0.984, "Brevitas bnn_pynq": 0.9888}))
