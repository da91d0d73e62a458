"""Deep Compression (Han et al. 2016) and connection selection: pruning masks, trained weight sharing and
Huffman coding, with an exact size report.

Masks are buffers (`weight_mask`) on the layers they prune and are re-applied after every optimizer step
(`apply_masks`), so a pruned weight is exactly zero in the trained model, in its checkpoint and, through
any symmetric integer or ternary quantizer, in the QONNX export: the compiler sees the zeros as sparsity.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from xnorkit.quant_train import models

MASK = "weight_mask"


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """The weight layers (Linear, Conv and their Brevitas subclasses), by name, in forward order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}


def _weight(layer: nn.Module) -> torch.Tensor:
    return layer.parametrizations.weight.original if parametrize.is_parametrized(layer, "weight") else layer.weight


def set_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Attach pruning masks (1 keeps a weight) and zero what they remove. A binary layer becomes a pruned binary
    one (models.PrunedBinaryWeight: +-1 kept, 0 removed), since a binary quantizer has no zero."""
    from brevitas.nn.mixin.parameter import QuantWeightMixin

    layers = prunable(model)
    for name, mask in masks.items():
        layer = layers[name]
        if models.quantized_by(layer, models.BinaryWeight):
            QuantWeightMixin.__init__(layer, models.PrunedBinaryWeight)
        if MASK in layer._buffers:
            layer._buffers[MASK] = mask.to(torch.float32)
        else:
            layer.register_buffer(MASK, mask.to(torch.float32))
    apply_masks(model)


def apply_masks(model: nn.Module) -> None:
    """Zero every pruned weight (call after each optimizer step; `train.train(after_step=...)` does)."""
    with torch.no_grad():
        for layer in prunable(model).values():
            mask = getattr(layer, MASK, None)
            if mask is not None:
                _weight(layer).mul_(mask)


def density(model: nn.Module) -> dict[str, float]:
    """Fraction of nonzero weights per layer."""
    return {name: float((_weight(layer) != 0).float().mean()) for name, layer in prunable(model).items()}


def magnitude_masks(model: nn.Module, keep: dict[str, float],
                    block: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Deep Compression stage 1: keep the fraction `keep[name]` of each layer's weights with the largest
    magnitude (among those still alive); ties at the threshold are kept. With `block` (rows, columns), whole
    blocks of the layer's matrix (outputs x inputs; a convolution's inputs in window order (ky, kx, c), as the
    hardware streams them) go, the ones of the smallest L1 norm: pruned at the PE x SIMD tiles of a folding,
    the generated units skip them (hw.folding.unit_schedule)."""
    masks = {}
    for name, layer in prunable(model).items():
        if name not in keep:
            continue
        w = _weight(layer).detach().abs()
        alive_mask = getattr(layer, MASK, torch.ones_like(w)) > 0
        if block is not None:
            masks[name] = _block_mask(name, w, alive_mask, keep[name], block)
            continue
        alive = w[alive_mask]
        n_keep = max(1, round(keep[name] * w.numel()))
        threshold = torch.topk(alive.flatten(), min(n_keep, alive.numel())).values[-1]
        masks[name] = (w >= threshold) & (w > 0)
    return masks


def _unit_order(w: torch.Tensor) -> torch.Tensor:
    """A weight tensor as the unit's matrix: outputs x inputs, a convolution's inputs in window order."""
    return w.permute(0, 2, 3, 1).reshape(len(w), -1) if w.dim() == 4 else w


def _block_mask(name: str, w: torch.Tensor, alive: torch.Tensor, keep: float, block: tuple[int, int]) -> torch.Tensor:
    from xnorkit.errors import XnorkitError

    matrix, alive_matrix = _unit_order(w), _unit_order(alive)
    rows, cols = matrix.shape
    br, bc = block
    if rows % br or cols % bc:
        raise XnorkitError(f"prune.block: layer {name}'s matrix is {rows} x {cols}, not divisible into {br} x {bc} "
                           f"blocks; choose a block that divides every pruned layer (or prune it without blocks)")
    scores = (matrix * alive_matrix).reshape(rows // br, br, cols // bc, bc).sum(dim=(1, 3))
    n_keep = max(1, round(keep * scores.numel()))
    kept = torch.zeros(scores.numel(), dtype=torch.bool)
    kept[torch.topk(scores.flatten(), n_keep).indices] = True
    kept_matrix = kept.reshape(scores.shape).repeat_interleave(br, 0).repeat_interleave(bc, 1) & alive_matrix
    if w.dim() == 4:  # back to (out, in, kh, kw)
        out_c, in_c, kh, kw = w.shape
        return kept_matrix.reshape(out_c, kh, kw, in_c).permute(0, 3, 1, 2).contiguous()
    return kept_matrix


def correlation_masks(model: nn.Module, x: torch.Tensor, keep: dict[str, float]) -> dict[str, torch.Tensor]:
    """Sun, Wang and Tang (2015): keep the connections whose two neurons are most correlated. For each
    output neuron of a layer, the inputs with the largest |Pearson correlation| between the input's
    activation and the neuron's response over `x` are kept, an equal share per output (positive and
    negative correlations alike). Convolutions correlate channels (spatial positions pooled) and keep or
    drop a whole kernel slice."""
    layers = prunable(model)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(name):
        def record(module, inputs, output):
            a, b = models.plain(inputs[0]).detach(), models.plain(output).detach()
            if a.dim() == 4:  # channels: average over positions
                a, b = a.mean((2, 3)), b.mean((2, 3))
            seen[name] = (a, b)
        return record

    handles = [layers[n].register_forward_hook(hook(n)) for n in keep]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    masks = {}
    for name, fraction in keep.items():
        a, b = seen[name]
        a = (a - a.mean(0)) / (a.std(0) + 1e-8)
        b = (b - b.mean(0)) / (b.std(0) + 1e-8)
        corr = (b.T @ a).abs() / len(a)  # (outputs, inputs)
        k = max(1, round(fraction * corr.shape[1]))
        rows = torch.zeros_like(corr, dtype=torch.bool)
        rows.scatter_(1, torch.topk(corr, k, dim=1).indices, True)
        w = _weight(layers[name])
        masks[name] = rows.reshape(*rows.shape, *([1] * (w.dim() - 2))).expand_as(w).clone()
    return masks


class _Shared(nn.Module):
    """A weight tensor drawn from a trained codebook: weight = centroids[index] (zero where pruned)."""

    def __init__(self, index: torch.Tensor, centroids: torch.Tensor, alive: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index)
        self.register_buffer("alive", alive.to(torch.float32))
        self.centroids = nn.Parameter(centroids)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return self.centroids[self.index] * self.alive


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars with linear initialization over [min, max] (the initialization Deep
    Compression found best: it keeps the rare large weights). Returns (centroids, index per value)."""
    centroids = np.linspace(values.min(), values.max(), k)
    for _ in range(iterations):
        index = np.abs(values[:, None] - centroids[None, :]).argmin(1)
        sums = np.bincount(index, weights=values, minlength=k)
        counts = np.bincount(index, minlength=k)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(moved, centroids):
            break
        centroids = moved
    return centroids, np.abs(values[:, None] - centroids[None, :]).argmin(1)


def share_weights(model: nn.Module, bits: dict[str, int]) -> None:
    """Deep Compression stage 2: cluster each layer's surviving weights into 2^bits shared values. The
    weight becomes centroids[index]; training then fine-tunes the centroids (each centroid's gradient is
    the sum of its weights' gradients, which autograd gives through the indexing)."""
    layers = prunable(model)
    for name, b in bits.items():
        layer = layers[name]
        w = _weight(layer).detach()
        alive = w != 0
        centroids, index = kmeans_1d(w[alive].numpy().astype(np.float64), 2 ** b)
        full = torch.zeros(w.shape, dtype=torch.long)
        full[alive] = torch.from_numpy(index)
        parametrize.register_parametrization(
            layer, "weight", _Shared(full, torch.tensor(centroids, dtype=w.dtype), alive))


def bake(model: nn.Module) -> None:
    """Replace the shared-weight parametrizations (and any other) with the plain weights they produce."""
    models.unparametrize(model)


def huffman_lengths(counts: dict) -> dict:
    """Code length per symbol of an optimal prefix code (Huffman); a lone symbol still takes one bit."""
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap = [(n, i, (s,)) for i, (s, n) in enumerate(sorted(counts.items(), key=lambda kv: str(kv[0])))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    tie = len(heap)
    while len(heap) > 1:
        n1, _, a = heapq.heappop(heap)
        n2, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (n1 + n2, tie, a + b))
        tie += 1
    return lengths


def huffman_bits(symbols: list) -> tuple[int, int]:
    """(payload bits, code table bits) of Huffman-coding `symbols`. The table is canonical: one code length
    (5 bits) per symbol of the alphabet, in a fixed order, as a decoder needs it."""
    counts = Counter(symbols)
    lengths = huffman_lengths(counts)
    return sum(counts[s] * lengths[s] for s in counts), 5 * len(counts)


def relative_gaps(flat_alive: np.ndarray, gap_bits: int) -> tuple[list[int], int]:
    """Deep Compression's sparse index: the distance from each nonzero to the previous one, in `gap_bits`
    bits; a distance beyond the largest gap inserts a filler zero entry. Returns (gaps, filler count)."""
    gaps, fillers, last = [], 0, -1
    limit = 2 ** gap_bits - 1
    for position in np.flatnonzero(flat_alive):
        distance = int(position - last)
        while distance > limit:
            gaps.append(limit)
            fillers += 1
            distance -= limit
        gaps.append(distance)
        last = int(position)
    return gaps, fillers


@dataclass
class LayerSize:
    name: str
    weights: int
    nonzero: int
    index_bits: int  # Huffman-coded codebook indices, fillers included
    gap_bits: int  # Huffman-coded relative positions
    table_bits: int  # both Huffman code tables
    codebook_bits: int  # the shared values, 32 bits each
    bias_bits: int

    @property
    def dense_bits(self) -> int:
        return 32 * self.weights + self.bias_bits

    @property
    def total_bits(self) -> int:
        return self.index_bits + self.gap_bits + self.table_bits + self.codebook_bits + self.bias_bits


def size_report(model: nn.Module, gap_bits: int = 5) -> list[LayerSize]:
    """The exact stored size of each layer after pruning, sharing and Huffman coding: every nonzero weight
    is a codebook index; its position a relative gap (fillers carry index 0, as in the paper)."""
    report = []
    for name, layer in prunable(model).items():
        flat = layer.weight.detach().flatten().numpy()  # what the layer computes with: shared values
        alive = flat != 0
        gaps, fillers = relative_gaps(alive, gap_bits)
        values, inverse = np.unique(flat[alive], return_inverse=True)
        index_symbols = list(inverse.tolist()) + [-1] * fillers
        index_bits, index_table = huffman_bits(index_symbols)
        gap_payload, gap_table = huffman_bits(gaps) if gaps else (0, 0)
        bias = getattr(layer, "bias", None)
        report.append(LayerSize(name, int(flat.size), int(alive.sum()), index_bits, gap_payload,
                                index_table + gap_table, 32 * len(values),
                                32 * (bias.numel() if bias is not None else 0)))
    return report
