"""xnorkit: binary and low-bit neural networks from Brevitas training to bit-exact RTL and firmware."""

__version__ = "0.1.0"
