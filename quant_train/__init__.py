"""Quantization-aware training with Brevitas."""

import warnings

# Brevitas warns on import about an optional CUDA kernel package that CPU training never uses.
warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
warnings.filterwarnings("ignore", message="brevitas.fx is deprecated", category=DeprecationWarning)
