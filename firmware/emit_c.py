"""C emitter: ahead-of-time C99 for one network: packed const weights (flash), one static activation arena
planned at generation time (RAM), and one call per IR node into the hand-written kernels of firmware/lib.
`emit(graph) -> {relative path: text}`; no I/O, no numerics beyond what the IR states.

Tensors live in C as the kernels expect them (firmware/lib/xk_kernels.h): pixel by pixel, channels
fastest; bipolar ones packed 32 channels to a word per pixel, integer ones as int32. A fully connected layer
after a flatten gets its weight columns in that order (packing.hwc_columns), as in the RTL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

import xnorkit
from xnorkit import boards, layout, naming, packing, passes, tools
from xnorkit.errors import XnorkitError
from xnorkit.ir import (
    Add,
    Concat,
    Conv,
    Dequantize,
    Graph,
    MatMul,
    MaxPool,
    Quantize,
    Reshape,
    SumPool,
    Threshold,
    Transpose,
)

# hand-written files copied beside the generated ones: (source in firmware/, path in the output folder)
LIBRARY = {"lib/xk_kernels.h": "xk_kernels.h", "lib/xk_kernels.c": "xk_kernels.c",
           "cortex_m4/startup.c": "startup.c"}
LINK_BOARD = "mps2-an386"  # the board of the folder's link.ld (firmware/runner.py writes others' into build/)
# templates rendered with the model's name: the batch runners, and the stand-alone build, PlatformIO library,
# Zephyr module / CMake library
TEMPLATES = {"lib/xk_runner.c.j2": "xk_runner.c", "cortex_m4/xk_profile.c.j2": "xk_profile.c",
             "project/Makefile.j2": "Makefile", "project/library.json.j2": "library.json",
             "project/CMakeLists.txt.j2": "CMakeLists.txt", "project/module.yml.j2": "zephyr/module.yml"}
BUILD = "build"  # what the runners and the Makefile build, apart from the library's files


def c_float(value: float) -> str:
    """An exact float32 literal (C99 hexadecimal)."""
    return float(np.float32(value)).hex() + "f"


def c_array(values: np.ndarray, per_line: int = 8, fmt: str = "{}") -> str:
    values = np.asarray(values).reshape(-1)
    items = [c_float(v) if values.dtype.kind == "f" else fmt.format(int(v)) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n    ".join(lines)


def _words(n: int) -> int:
    return -(-n // 32)


@dataclass
class Tensor:
    """A tensor as C holds it: `channels` values at each of `pixels` positions, packed bits or int32."""

    index: int
    what: str  # the IR tensor (or the unpacked copy of one)
    bits: bool
    channels: int
    pixels: int
    first: int = -1  # the step that writes it
    last: int = -1  # the last step that reads it
    offset: int = 0  # bytes into the arena

    @property
    def bytes(self) -> int:
        return 4 * self.pixels * (_words(self.channels) if self.bits else self.channels)

    @property
    def ctype(self) -> str:
        return "uint32_t" if self.bits else "int32_t"

    @property
    def macro(self) -> str:
        return f"XK_T{self.index}"


@dataclass(frozen=True)
class _Table:
    ctype: str
    name: str
    count: int
    body: str


@dataclass
class Program:
    """The generated program before rendering: the arena's tensors, the const tables, the call sequence
    (each call's text with `{}` fields for the tensors it names) and the arena size."""

    tensors: list[Tensor] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)
    structs: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, initializer) geometries
    calls: list[tuple[str, list[Tensor], str]] = field(default_factory=list)  # (text, its tensors, comment)
    output: Tensor | None = None
    result: str = ""  # the expression xk_infer returns: the final output's class
    weight_bytes: int = 0
    input_call: int = -1  # the input quantizer's step: NAME_infer_int loads integers there instead
    int_input: str = ""  # that step's text for integer inputs
    input_ctype: str = "int32_t"  # the C type of one integer input
    input_type: str = ""  # the IR's name of the input quantizer's type

    @property
    def bytes(self) -> int:
        """The activation arena, bytes: every tensor at its planned offset."""
        return max((t.offset + t.bytes for t in self.tensors), default=0)

    def tensor(self, what: str, bits: bool, channels: int, pixels: int) -> Tensor:
        t = Tensor(len(self.tensors), what, bits, channels, pixels)
        self.tensors.append(t)
        return t

    def call(self, text: str, *tensors: Tensor, writes: Tensor | None = None, comment: str = "") -> None:
        step = len(self.calls)
        for t in tensors:
            t.last = max(t.last, step)
        if writes is not None:
            writes.first = step
            writes.last = max(writes.last, step)
        self.calls.append((text, [*tensors, *([writes] if writes else [])], comment))

    def table(self, ctype: str, name: str, values: np.ndarray, per_line: int, fmt: str = "{}") -> str:
        values = np.asarray(values).reshape(-1)
        self.tables.append(_Table(ctype, name, values.size, c_array(values, per_line, fmt)))
        self.weight_bytes += values.size * _CTYPE_BYTES[ctype]
        return name


_CTYPE_BYTES = {"int64_t": 8, "uint32_t": 4, "int32_t": 4, "float": 4, "uint16_t": 2, "int16_t": 2, "int8_t": 1,
                "uint8_t": 1}


def plan(tensors: list[Tensor]) -> None:
    """Offsets in one arena: largest tensors first, each at the lowest offset where it overlaps no placed
    tensor that is alive at the same time (a kernel's inputs and output are alive together)."""
    placed: list[Tensor] = []
    for t in sorted(tensors, key=lambda t: (-t.bytes, t.index)):
        busy = sorted((p.offset, p.offset + p.bytes) for p in placed if not (p.last < t.first or t.last < p.first))
        offset = 0
        for start, end in busy:
            if offset + t.bytes <= start:
                break
            offset = max(offset, end)
        t.offset = offset
        placed.append(t)


_HEADER = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string("""\
/* Generated by xnorkit: the C API of the network {{ name }}, for C99 and C++ firmware.
 *
 * Build {{ name }}.c with the firmware (it includes the kernels, xk_kernels.c, as its own: C99, no heap, no
 * floating point but the input quantizer); call from C or C++:
 *
 *     #include "{{ name }}.h"
 *
 *     static float image[{{ NAME }}_INPUT_SIZE];     // the model's input, filled by the application
 *     static int32_t scores[{{ NAME }}_OUTPUT_SIZE]; // the integer outputs (docs/numerics.md)
 *
 *     int32_t label = {{ name }}_infer(image, scores);
 *
 *     // or, from integers a sensor already quantized (no floating point at all):
 *     static {{ name }}_input_t pixels[{{ NAME }}_INPUT_SIZE];
 *     int32_t label2 = {{ name }}_infer_int(pixels, scores);
 *
 * Weights are const (flash); activations live in one static arena of {{ NAME }}_ACTIVATION_BYTES (RAM), so
 * {{ name }}_infer is not reentrant: call it from one thread at a time. Every symbol carries the model's name,
 * so several models link into one firmware. */
#ifndef {{ NAME }}_H
#define {{ NAME }}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define {{ NAME }}_INPUT_SIZE {{ input_size }}u
#define {{ NAME }}_OUTPUT_SIZE {{ output_size }}u
#define {{ NAME }}_ACTIVATION_BYTES {{ activation_bytes }}u
#define {{ NAME }}_WEIGHT_BYTES {{ weight_bytes }}u
#define {{ NAME }}_PROFILE_STEPS {{ steps }}u /* calls in {{ name }}_infer (instruction profiles: xk_profile.c) */

/* Runs one inference: `input` holds {{ NAME }}_INPUT_SIZE floats in the layout the trained model takes ((C, H, W)
 * for images; the input quantizer is applied here); `output` receives {{ NAME }}_OUTPUT_SIZE integers: the last
 * layer's (a network with several outputs: each exit's, then the final layer's; with early exits that stop
 * the inference, the outputs after the exit taken read 0 and one more integer follows: the index of the exit
 * taken, the number of exits for the final layer). Returns the class: the index of the largest integer class
 * score of the output taken (numerics.class_scores: the float outputs in integers). */
int32_t {{ name }}_infer(const float *input, int32_t *output);

/* One input value already quantized ({{ input_type }}): what the input quantizer would produce
{%- if input_type == "bipolar" %}; 1 (any value
 * above 0) stands for +1, 0 or -1 for -1{% endif %}. */
typedef {{ input_ctype }} {{ name }}_input_t;

/* Runs one inference on integers, without floating point: `input` holds {{ NAME }}_INPUT_SIZE values of
 * {{ name }}_input_t, the input quantizer's results (for a sensor or camera that delivers them; values out of the
 * type's range are clamped as the quantizer clamps), in the same layout as for {{ name }}_infer; `output` and the
 * result as there. */
int32_t {{ name }}_infer_int(const {{ name }}_input_t *input, int32_t *output);

#ifdef __cplusplus
}
#endif

#endif
""")

_SOURCE = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True).from_string("""\
/* Generated by xnorkit from the IR: const weights and thresholds, a static activation arena, the calls. */
#include "{{ name }}.h"

/* the kernels, this model's own (static): several models link into one firmware without a clash */
#if defined(__GNUC__)
#define XK_API static __attribute__((unused))
#else
#define XK_API static
#endif
#include "xk_kernels.c"

{% for t in tables %}
static const {{ t.ctype }} {{ t.name }}[{{ t.count }}] = {
    {{ t.body }}
};
{% endfor %}
{% for kind, name, body in structs %}
static const {{ kind }} {{ name }} = {{ '{' }}{{ body }}{{ '}' }};
{% endfor %}

/* activations: {{ arena_bytes }} bytes, each tensor at the offset planned from its lifetime */
static uint32_t xk_arena[{{ arena_words }}];
{% for t in tensors %}
#define {{ t.macro }} (({{ t.ctype }} *)&xk_arena[{{ t.offset // 4 }}])  /* {{ t.what }}: {{ t.bytes }} bytes */
{% endfor %}

#ifdef XK_PROFILE /* instruction counts per call (cortex_m4/xk_profile.c) */
void xk_profile_point(uint32_t step);
#define XK_PROFILE_POINT(step) xk_profile_point(step)
#else
#define XK_PROFILE_POINT(step) ((void)0)
#endif

/* every step after the input's: the same for float and integer inputs */
static int32_t xk_layers(int32_t *output) {
{% for line in layers %}
    {{ line }}
    XK_PROFILE_POINT({{ prefix | length + 1 + loop.index }}u);
{% endfor %}
    return {{ result }};
}

int32_t {{ name }}_infer(const float *input, int32_t *output) {
    XK_PROFILE_POINT(0u);
{% for line in prefix %}
    {{ line }}
    XK_PROFILE_POINT({{ loop.index }}u);
{% endfor %}
    {{ float_input }}
    XK_PROFILE_POINT({{ prefix | length + 1 }}u);
    return xk_layers(output);
}

int32_t {{ name }}_infer_int(const {{ name }}_input_t *input, int32_t *output) {
    XK_PROFILE_POINT(0u);
{% for line in prefix %}
    {{ line }}
    XK_PROFILE_POINT({{ loop.index }}u);
{% endfor %}
    {{ int_input }}
    XK_PROFILE_POINT({{ prefix | length + 1 }}u);
    return xk_layers(output);
}
""")


def _map(graph: Graph, tensor: str) -> tuple[int, int]:
    """(channels, pixels) of an IR tensor: a vector is one pixel."""
    shape = graph.shape(tensor)
    return int(shape[0]), int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _geometry(program: Program, kind: str, values: dict) -> str:
    name = f"xk_shape{len(program.structs)}"
    program.structs.append((kind, name, ", ".join(f".{k} = {v if isinstance(v, str) else int(v)}"
                                                  for k, v in values.items())))
    return name


_PROLOGUE_OPS = {"mul": 0, "div": 1, "add": 2, "sub": 3}  # XK_MUL, XK_DIV, XK_ADD, XK_SUB in xk_kernels.h


def _quantize(prog: Program, graph: Graph, node: Quantize, binary_kernels: bool) -> Tensor:
    """The input quantizer's call, with its prologue as tables (each constant one value, or one per input
    element in the input's order). A channels-last input is stored as the (C, H, W) map its transpose makes."""
    transpose = graph.channels_last_input()
    channels, pixels = _map(graph, transpose.output if transpose else node.output)
    channels_last = int(transpose is not None)
    prologue = "0"
    if node.steps:
        full = (1, *graph.input_shape)
        values = [c.reshape(1) if c.size == 1 else np.broadcast_to(c, full).reshape(-1) for c in node.constants]
        ops = prog.table("uint8_t", "xk_prologue_ops", [_PROLOGUE_OPS[op] for op in node.steps], 16)
        sizes = prog.table("uint32_t", "xk_prologue_sizes", [len(v) for v in values], 16)
        table = prog.table("float", "xk_prologue_values", np.concatenate(values), 4)
        prologue = "&" + _geometry(prog, "xk_prologue", dict(steps=len(values), ops=ops, sizes=sizes, values=table))
    prog.input_call, prog.input_ctype, prog.input_type = len(prog.calls), input_ctype(node.dtype), node.dtype.name()
    if node.dtype.bipolar:
        q = prog.tensor(node.output, binary_kernels, channels, pixels)
        outputs = "{}, 0" if binary_kernels else "0, {}"
        prog.call(f"xk_quantize_sign(input, {channels}u, {pixels}u, {channels_last}, {prologue}, {outputs});", writes=q,
                  comment=node.name)
        prog.int_input = f"xk_load_signs(input, {channels}u, {pixels}u, {channels_last}, {outputs});"
        return q
    q = prog.tensor(node.output, False, channels, pixels)
    prog.call(f"xk_quantize(input, {channels}u, {pixels}u, {channels_last}, {c_float(node.scale)}, {node.zero_point}, "
              f"{node.qmin}, {node.qmax}, {prologue}, {{}});", writes=q, comment=node.name)
    elem = _CTYPE_BYTES[prog.input_ctype]
    prog.int_input = (f"xk_load_ints(input, {elem}u, {int(node.dtype.signed)}, {channels}u, {pixels}u, "
                      f"{channels_last}, {node.qmin}, {node.qmax}, {{}});")
    return q


def input_ctype(dtype) -> str:
    """The C type of one already-quantized input value (NAME_input_t): the narrowest that holds the type."""
    if dtype.bipolar:
        return "int8_t"
    width = next((w for w in (8, 16) if dtype.bits <= w), 32)
    return "int32_t" if width == 32 else f"{'' if dtype.signed else 'u'}int{width}_t"


@dataclass
class _Lowering:
    """Lowering one graph: the program built so far, where each IR tensor is stored, and what the outputs
    need (their places in `output`, the early exits, which are written)."""

    graph: Graph
    binary_kernels: bool
    lut_bits: int = 8  # xk_dense_int_lut's group of inputs (8 or 4), 0: bit planes instead
    prog: Program = field(default_factory=Program)
    at: dict[str, Tensor] = field(default_factory=dict)
    layout_of: dict[str, layout.Layout] = field(default_factory=dict)  # xnorkit.layout.track
    layer: int = 0
    written: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # where each output goes in `output` (early exits first, in the graph's order, as golden joins them)
        self.offsets, self.end = {}, 0
        for name in self.graph.outputs:
            self.offsets[name] = self.end
            self.end += int(np.prod(self.graph.shape(name)))
        self.exits = dict(self.graph.exits)

    def as_int(self, t: Tensor) -> Tensor:
        """`t` as int32 values (an unpacked copy of a bipolar tensor, -1/+1)."""
        if not t.bits:
            return t
        copy = self.prog.tensor(f"{t.what} as integers", False, t.channels, t.pixels)
        self.prog.call(f"xk_bits_to_int({{}}, {t.channels}u, {t.pixels}u, {{}});", t, writes=copy)
        return copy

    def class_of(self, name: str) -> str:
        """The class of an output (xk_class over its Dequantize's integer class scores, one per value)."""
        node, size = self.graph.dequantize_of(name), int(np.prod(self.graph.shape(name)))
        table = f"xk_scores{self.graph.outputs.index(name)}"
        repeat = size // len(node.score_weight)
        self.prog.table("int32_t", f"{table}_weight", np.repeat(node.score_weight, repeat), 10)
        self.prog.table("int64_t", f"{table}_bias", np.repeat(node.score_bias, repeat), 4, "INT64_C({})")
        return f"output + {self.offsets[name]}, {table}_weight, {table}_bias, {size}u"

    def write_output(self, name: str) -> None:
        """Copy an output into `output`; after an early exit's, its test (numerics.exit_taken)."""
        result, out_type = self.at[name], self.graph.tensor_types.get(name)
        if out_type is not None and out_type.bipolar and not result.bits:
            raise XnorkitError("the int8 baseline cannot return a bipolar output as bits")
        kernel = "xk_output_bits" if result.bits else "xk_output_int"
        self.prog.call(f"{kernel}({{}}, {result.channels}u, {result.pixels}u, output + {self.offsets[name]});",
                       result, comment=f"output {name}")
        self.written.add(name)
        if name in self.exits:  # stop here when the margin reaches the exit's threshold
            index = list(self.exits).index(name)
            step = len(self.prog.calls) + 1  # the profile point that follows this call
            scores = self.class_of(name)
            self.prog.call(f"if (xk_exit_margin({scores}) >= INT64_C({self.exits[name]})) {{{{ "
                           f"output[{self.end}] = {index}; XK_PROFILE_POINT({step}u); "
                           f"return xk_class({scores}); }}}}", comment=f"early exit {index}")


def _lower_quantize(lw: _Lowering, node: Quantize) -> None:
    lw.at[node.output] = _quantize(lw.prog, lw.graph, node, lw.binary_kernels)


def _lower_layout(lw: _Lowering, node: Reshape | Transpose) -> None:
    """A flatten (after a transpose, or not) changes only which order a later layer reads: nothing is called."""
    layout.track(lw.graph, node, lw.layout_of, "the C generator stores")
    lw.at[node.output] = lw.at[node.input]


def dense_kernel(node: MatMul, matrix: np.ndarray, packed_input: bool, pixels: int, channels: int,
                 binary_kernels: bool, lut_bits: int = 8) -> str:
    """The C kernel of a fully connected layer (firmware/lib/xk_kernels.h), `matrix` its weights in the stored
    input's order (`pixels` x `channels`, packed bits or int32): bin_bin (XNOR-popcount), bin_sparse or
    bin_masked (bipolar inputs, weights -1/0/+1 as two bit planes, only the nonzero words when that is
    smaller), int_lut (integer inputs of at most 12 bits, weights -1/+1 or -1/0/+1, by subset-sum tables of
    `lut_bits`-input groups; 0: never), int_bin (integer inputs by bit planes, binary weights), int_kbit (2- or
    4-bit weight fields), int_int (int8 weights)."""
    if node.in_dtype.bipolar and node.w_dtype.bipolar and packed_input:
        return "bin_bin"
    if packed_input and binary_kernels and node.w_dtype.bits == 2 and packing.signs_or_zeros(matrix):
        stored = int((_bit_planes(matrix, pixels, channels)[0] != 0).sum())
        # bin_sparse when smaller, and when something is stored (C has no empty arrays: all-zero weights stay dense)
        return "bin_sparse" if 0 < stored and stored * 80 + (len(matrix) + 1) * 32 < len(matrix) * pixels \
            * _words(channels) * 64 else "bin_masked"
    if binary_kernels and lut_bits and _lut_fits(node) and (node.w_dtype.bipolar or packing.signs_or_zeros(matrix)):
        return "int_lut"
    if node.w_dtype.bipolar and binary_kernels:
        return "int_bin"
    if node.w_dtype.bits <= 4 and binary_kernels:
        return "int_kbit"
    return "int_int"


WINDOW_TAPS = 64  # XK_WINDOW_TAPS (xk_kernels.c): the largest window xk_conv_single_int16 gathers
WINDOW_WORDS = 64  # XK_WINDOW_WORDS (xk_kernels.h): the largest window xk_conv_bin_window gathers
LUT_BITS = (8, 4, 0)  # fastest first: the integer-input kernels' choices, by the RAM they take

# the widest integer input whose subset sums over 8 inputs fit xk_dense_int_lut's 16-bit table entries
LUT_MAX_INPUT_BITS = 12


def _lut_fits(node: MatMul) -> bool:
    return not node.in_dtype.bipolar and node.in_dtype.bits <= LUT_MAX_INPUT_BITS


# Rows (times planes: 2 for ternary weights) from which 8-input tables beat 4-input ones. Measured on the
# Cortex-M4 (QEMU -icount, 768 inputs): building costs 117 instructions per input for 8-input tables and 21 for
# 4-input ones; reading, 0.63 per input and row against 1.13. So 8 pays from (117 - 21) / (1.13 - 0.63) rows.
LUT8_MIN_ROWS = 192


def lut_group(lut_bits: int, rows: int) -> int:
    """The table size of one layer: 8-input tables where allowed and the layer has rows enough to repay them."""
    return 8 if lut_bits == 8 and rows >= LUT8_MIN_ROWS else 4


def lut_entries(n_in: int, lut_bits: int) -> int:
    """The 16-bit entries of xk_dense_int_lut's tables: one table of 2^lut_bits per group of the padded input."""
    return _words(n_in) * 32 // lut_bits << lut_bits


def _bit_planes(matrix: np.ndarray, pixels: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(nonzero, positive) weight bits, packed per pixel of the stored input: (rows, words)."""
    planes = matrix.reshape(len(matrix), pixels, channels)
    keep = packing.pack_bits((planes != 0).astype(np.uint8), 32).reshape(len(matrix), -1)
    positive = packing.pack_bits((planes > 0).astype(np.uint8), 32).reshape(len(matrix), -1)
    return keep, positive


def _lower_matmul(lw: _Lowering, node: MatMul) -> None:
    x, prog = lw.at[node.input], lw.prog
    _check_weight_widths(node)
    acc = lw.at[node.output] = prog.tensor(node.output, False, *_map(lw.graph, node.output))
    matrix = node.weights
    if node.input in lw.layout_of:
        map_shape, axes, _ = lw.layout_of[node.input]
        matrix = packing.hwc_columns(matrix, map_shape, axes)
    name, n_out = f"xk_l{lw.layer}_weights", node.out_features
    kernel = dense_kernel(node, matrix, bool(x.bits), x.pixels, x.channels, lw.binary_kernels, lw.lut_bits)
    if kernel == "bin_bin":  # packed per pixel of the stored input, as the input is
        rows = packing.bipolar_to_bits(matrix.reshape(len(matrix), x.pixels, x.channels))
        prog.table("uint32_t", name, packing.pack_bits(rows, 32), 6, "0x{:08x}u")
        prog.call(f"xk_dense_bin_bin({{}}, {x.pixels * _words(x.channels)}u, {x.pixels * x.channels}u, {name}, "
                  f"{n_out}u, {{}});", x, writes=acc, comment=node.name)
    elif kernel in ("bin_sparse", "bin_masked"):
        _dense_two_planes(prog, kernel, name, matrix, x, acc, node)
    elif kernel == "int_lut":
        _dense_lut(lw, name, matrix, x, acc, node)
    elif kernel == "int_bin":  # by the input's bit planes on the binary kernel
        bits = packing.bipolar_to_bits(matrix)
        prog.table("uint32_t", name, packing.pack_bits(bits, 32), 6, "0x{:08x}u")
        ones = prog.table("int32_t", f"{name}_ones", bits.sum(axis=1), 10)
        planes = prog.tensor(f"{node.input} bit planes", True, node.in_features, node.in_dtype.bits)
        prog.call(f"xk_dense_int_bin({{}}, {node.in_features}u, {node.in_dtype.bits}u, {int(node.in_dtype.signed)}, "
                  f"{name}, {ones}, {n_out}u, {{}}, {{}});", x, planes, writes=acc, comment=node.name)
        planes.first = planes.last = len(prog.calls) - 1
    elif kernel == "int_kbit":  # 2- or 4-bit fields: less flash than int8
        field_bits = 2 if node.w_dtype.bits <= 2 else 4
        prog.table("uint32_t", name, packing.pack_rows(matrix, field_bits), 6, "0x{:08x}u")
        prog.call(f"xk_dense_int_kbit({{}}, {node.in_features}u, {name}, {field_bits}u, {n_out}u, {{}});",
                  lw.as_int(x), writes=acc, comment=node.name)
    else:
        prog.table("int8_t", name, matrix, 16)
        prog.call(f"xk_dense_int_int({{}}, {node.in_features}u, {name}, {n_out}u, {{}});", lw.as_int(x),
                  writes=acc, comment=node.name)
    lw.layer += 1


def _dense_lut(lw: _Lowering, name: str, matrix: np.ndarray, x: Tensor, acc: Tensor, node: MatMul) -> None:
    """Integer inputs by subset-sum tables (xk_dense_int_lut): the +1 weights' bits, and for ternary or pruned
    weights the -1 weights' bits; the input's least value `lo` shifts u = x - lo to 0 and back through offset."""
    prog, hex_word = lw.prog, "0x{:08x}u"
    prog.table("uint32_t", name, packing.pack_bits((matrix > 0).astype(np.uint8), 32), 6, hex_word)
    negative = "0" if node.w_dtype.bipolar else prog.table(
        "uint32_t", f"{name}_negative", packing.pack_bits((matrix < 0).astype(np.uint8), 32), 6, hex_word)
    lo = node.in_dtype.quant_range(False)[0]
    offset = prog.table("int32_t", f"{name}_offset", lo * matrix.sum(axis=1), 10) if lo else "0"
    group = lut_group(lw.lut_bits, node.out_features * (1 if node.w_dtype.bipolar else 2))
    table = prog.tensor(f"{node.input} subset sums", False, lut_entries(node.in_features, group) // 2, 1)
    prog.call(f"xk_dense_int_lut({{}}, {node.in_features}u, {lo}, {name}, {negative}, {offset}, {node.out_features}u, "
              f"{group}u, (uint16_t *){{}}, {{}});", x, table, writes=acc, comment=node.name)
    table.first = table.last = len(prog.calls) - 1


def _check_weight_widths(node: MatMul | Conv) -> None:
    if node.w_dtype.bits > 8:
        raise XnorkitError(f"layer '{node.name}': {node.w_dtype.name()} weights do not fit the C kernels' int8 "
                           f"weights (8 bits at most)")
    if not node.in_dtype.bipolar and node.in_dtype.bits > 16:
        raise XnorkitError(f"layer '{node.name}': integer inputs over 16 bits do not fit the C kernels")


def _dense_two_planes(prog: Program, kernel: str, name: str, matrix: np.ndarray, x: Tensor, acc: Tensor,
                      node: MatMul) -> None:
    """Weights -1, 0, +1 (pruned binary, ternary) as two bit planes; bin_sparse stores only the words holding a
    kept weight with their places (row starts, word indices): zero blocks neither stored nor visited."""
    keep, positive = _bit_planes(matrix, x.pixels, x.channels)
    kept = prog.table("int32_t", f"{name}_kept", np.count_nonzero(matrix, axis=1), 10)
    if kernel == "bin_sparse":
        stored = keep != 0
        starts = prog.table("uint32_t", f"{name}_row_start", np.r_[0, np.cumsum(stored.sum(axis=1))], 10)
        index = prog.table("uint16_t", f"{name}_word_index", np.nonzero(stored)[1], 12)
        prog.table("uint32_t", name, keep[stored], 6, "0x{:08x}u")
        sign = prog.table("uint32_t", f"{name}_positive", positive[stored], 6, "0x{:08x}u")
        prog.call(f"xk_dense_bin_sparse({{}}, {starts}, {index}, {name}, {sign}, {kept}, {node.out_features}u, "
                  f"{{}});", x, writes=acc, comment=node.name)
    else:
        prog.table("uint32_t", name, keep, 6, "0x{:08x}u")
        sign = prog.table("uint32_t", f"{name}_positive", positive, 6, "0x{:08x}u")
        prog.call(f"xk_dense_bin_masked({{}}, {x.pixels * _words(x.channels)}u, {name}, {sign}, {kept}, "
                  f"{node.out_features}u, {{}});", x, writes=acc, comment=node.name)


def _lower_conv(lw: _Lowering, node: Conv) -> None:
    x, prog, graph = lw.at[node.input], lw.prog, lw.graph
    _check_weight_widths(node)
    acc = lw.at[node.output] = prog.tensor(node.output, False, *_map(graph, node.output))
    name = f"xk_l{lw.layer}_weights"
    c, h, w = graph.shape(node.input)
    _, ho, wo = graph.shape(node.output)
    kh, kw = node.weights.shape[2:]
    shape = _geometry(prog, "xk_conv_shape", dict(
        c=c, h=h, w=w, out_c=node.out_channels, kh=kh, kw=kw, sh=node.stride[0], sw=node.stride[1],
        pad_t=node.pads[0], pad_l=node.pads[1], ho=ho, wo=wo, groups=node.groups))
    kernels = node.weights.transpose(0, 2, 3, 1)  # (o, ky, kx, c): the stored pixel's order
    if node.in_dtype.bipolar and node.w_dtype.bipolar and x.bits and node.groups == 1:
        bits = packing.bipolar_to_bits(kernels)
        if c % 32 and kh * kw * c <= 32 * WINDOW_WORDS:  # few channels: one packed vector per window
            rows = packing.pack_bits(bits.reshape(node.out_channels, -1), 32)
            prog.table("uint32_t", name, rows, 6, "0x{:08x}u")
            prog.call(f"xk_conv_bin_window({{}}, &{shape}, {name}, {{}});", x, writes=acc, comment=node.name)
        else:
            prog.table("uint32_t", name, packing.pack_bits(bits, 32), 6, "0x{:08x}u")
            prog.call(f"xk_conv_bin_bin({{}}, &{shape}, {name}, {{}});", x, writes=acc, comment=node.name)
    elif c == 1 and node.groups == 1 and kh * kw <= WINDOW_TAPS and _fits_int16(node.in_dtype) and lw.binary_kernels:
        taps = kernels.reshape(node.out_channels, -1)
        prog.table("int16_t", name, np.pad(taps, ((0, 0), (0, taps.shape[1] % 2))), 16)  # even taps: pairs
        prog.call(f"xk_conv_single_int16({{}}, &{shape}, {name}, {{}});", lw.as_int(x), writes=acc, comment=node.name)
    else:
        prog.table("int8_t", name, kernels, 16)
        prog.call(f"xk_conv_int_int({{}}, &{shape}, {name}, {{}});", lw.as_int(x), writes=acc, comment=node.name)
    lw.layer += 1


def _fits_int16(dtype) -> bool:
    return dtype.bipolar or dtype.bits <= (16 if dtype.signed else 15)


def _lower_threshold(lw: _Lowering, node: Threshold) -> None:
    x, prog = lw.at[node.input], lw.prog
    if x.bits:
        raise XnorkitError(f"threshold '{node.name}' on a bipolar tensor is not supported by the C generator")
    name = prog.table("int32_t", f"xk_thresholds{sum(t.ctype == 'int32_t' for t in prog.tables)}",
                      node.thresholds, 10)
    packed = node.out_dtype.bipolar and lw.binary_kernels
    out = lw.at[node.output] = prog.tensor(node.output, packed, x.channels, x.pixels)
    if node.out_dtype.bipolar:
        kernel = "xk_threshold" if packed else "xk_sign_int"
        prog.call(f"{kernel}({{}}, {name}, {x.channels}u, {x.pixels}u, {{}});", x, writes=out, comment=node.name)
    else:
        prog.call(f"xk_multithreshold({{}}, {name}, {x.channels}u, {x.pixels}u, {node.thresholds.shape[1]}u, "
                  f"{node.base}, {{}});", x, writes=out, comment=node.name)


def _lower_pool(lw: _Lowering, node: MaxPool | SumPool) -> None:
    x, prog = lw.at[node.input], lw.prog
    c, h, w = lw.graph.shape(node.input)
    _, ho, wo = lw.graph.shape(node.output)
    pads = node.pads if isinstance(node, MaxPool) else (0, 0, 0, 0)
    shape = _geometry(prog, "xk_pool_shape", dict(
        c=c, h=h, w=w, kh=node.kernel[0], kw=node.kernel[1], sh=node.stride[0], sw=node.stride[1],
        pad_t=pads[0], pad_l=pads[1], ho=ho, wo=wo))
    if isinstance(node, MaxPool):
        out = lw.at[node.output] = prog.tensor(node.output, x.bits, c, ho * wo)
        kernel = "xk_maxpool_bits" if x.bits else "xk_maxpool_int"
        prog.call(f"{kernel}({{}}, &{shape}, {{}});", x, writes=out, comment=node.name)
    else:
        x = lw.as_int(x)
        out = lw.at[node.output] = prog.tensor(node.output, False, c, ho * wo)
        prog.call(f"xk_sumpool_int({{}}, &{shape}, {{}});", x, writes=out, comment=node.name)


def _lower_add(lw: _Lowering, node: Add) -> None:
    a, b = (lw.as_int(lw.at[t]) for t in node.inputs)
    out = lw.at[node.output] = lw.prog.tensor(node.output, False, a.channels, a.pixels)
    lw.prog.call(f"xk_add_int({{}}, {{}}, {a.channels * a.pixels}u, {{}});", a, b, writes=out, comment=node.name)


def _lower_concat(lw: _Lowering, node: Concat) -> None:
    if len(node.inputs) != 2:
        raise XnorkitError(f"concat '{node.name}' of {len(node.inputs)} tensors: the C generator joins two")
    a, b = (lw.at[t] for t in node.inputs)
    if a.bits != b.bits:
        a, b = lw.as_int(a), lw.as_int(b)
    out = lw.at[node.output] = lw.prog.tensor(node.output, a.bits, a.channels + b.channels, a.pixels)
    kernel = "xk_concat_bits" if a.bits else "xk_concat_int"
    lw.prog.call(f"{kernel}({{}}, {a.channels}u, {{}}, {b.channels}u, {a.pixels}u, {{}});", a, b, writes=out,
                 comment=node.name)


def _lower_nothing(lw: _Lowering, node: Dequantize) -> None:
    """Float outputs are the host's business; the C API returns the integers."""


_LOWER = {Quantize: _lower_quantize, Reshape: _lower_layout, Transpose: _lower_layout, MatMul: _lower_matmul,
          Conv: _lower_conv, Threshold: _lower_threshold, MaxPool: _lower_pool, SumPool: _lower_pool,
          Add: _lower_add, Concat: _lower_concat, Dequantize: _lower_nothing}


def lower(graph: Graph, binary_kernels: bool = True, lut_bits: int = 8) -> Program:
    """The call sequence and tensors of a network, planned into one arena: one handler per IR op (_LOWER).
    `binary_kernels=False` builds the int8 baseline of the same network: bipolar values as integers -1/+1
    and weights as int8, every layer a plain multiply-accumulate loop (the same integers). `lut_bits`: the
    integer-input layers' subset-sum tables over 8 or 4 inputs (64 or 8 bytes of RAM per input), 0: bit planes
    (no table)."""
    if lut_bits not in LUT_BITS:
        raise XnorkitError(f"lut_bits {lut_bits} is not one of {', '.join(map(str, LUT_BITS))}")
    lw = _Lowering(graph, binary_kernels, lut_bits)
    if lw.exits:  # outputs an early return leaves uncomputed read 0
        lw.prog.call(f"for (uint32_t i = 0; i < {lw.end + 1}u; i++) output[i] = 0;")
    stored_as_is = graph.channels_last_input()  # the quantizer already wrote the transposed map
    for node in passes.exit_schedule(graph)[1]:  # each early exit's output as early as possible
        for name in lw.exits:  # each exit's output as soon as it exists, then its test
            if name in lw.at and name not in lw.written:
                lw.write_output(name)
        layout.check_reads_stored_order(node, lw.layout_of, "the C generator stores")
        handler = _LOWER.get(type(node))
        if handler is None:
            raise XnorkitError(f"the C generator does not support IR node '{node.name}' ({type(node).__name__})")
        if node is stored_as_is:
            lw.at[node.output] = lw.at[node.input]
        else:
            handler(lw, node)
    for name in graph.outputs:
        if name not in lw.written:
            lw.write_output(name)
    if lw.exits:
        lw.prog.call(f"output[{lw.end}] = {len(lw.exits)};", comment="no early exit: the final output")
    lw.prog.output = lw.at[graph.outputs[-1]]
    lw.prog.result = f"xk_class({lw.class_of(graph.outputs[-1])})"
    plan(lw.prog.tensors)
    return lw.prog


# What the generated library needs besides its tables and arena, measured with arm-none-eabi-gcc -O2 for a
# Cortex-M4: the kernels about 3 KB, each call in xk_infer a few dozen bytes; the kernels' deepest frame a
# few hundred bytes of stack.
CODE_BYTES, CODE_BYTES_PER_CALL, STACK_BYTES = 4096, 64, 1024


def footprint(prog: Program) -> dict[str, int]:
    """Flash (const tables and code) and RAM (the arena and stack) the library needs, in bytes."""
    code = CODE_BYTES + CODE_BYTES_PER_CALL * len(prog.calls)
    tables = prog.weight_bytes + 32 * len(prog.structs)
    return {"weights": prog.weight_bytes, "code": code, "flash": tables + code, "arena": prog.bytes,
            "stack": STACK_BYTES, "ram": prog.bytes + STACK_BYTES}


def check_fits(prog: Program, board) -> dict[str, int]:
    """The footprint, or a one-line refusal with the numbers when it exceeds the board's flash or RAM."""
    need = footprint(prog)
    problems = []
    if need["flash"] > board.flash_bytes:
        problems.append(f"{need['flash']:,} bytes of flash (weights {need['weights']:,} + code about "
                        f"{need['code']:,}), the board has {board.flash_bytes:,}")
    if need["ram"] > board.ram_bytes:
        problems.append(f"{need['ram']:,} bytes of RAM (activations {need['arena']:,} + stack {need['stack']:,}), "
                        f"the board has {board.ram_bytes:,}")
    if problems:
        raise XnorkitError(f"the network does not fit {board.name} ({board.part}): it needs " + "; and ".join(problems)
                           + "; prune or quantize it further, or pick a larger board (xnorkit boards)")
    return need


def fit(graph: Graph, board, reserve_ram: int = 0, known: dict | None = None) -> tuple[int, dict[str, int]]:
    """The fastest integer-input kernel whose tables fit the board's RAM, less `reserve_ram` bytes the rest of the
    firmware needs (LUT_BITS, fastest first), and the footprint with it; the one-line refusal of check_fits when
    none does. `known`: footprints per table size already computed for this graph (filled as they are)."""
    known = {} if known is None else known
    for lut_bits in LUT_BITS[:-1]:
        if lut_bits not in known:
            known[lut_bits] = footprint(lower(graph, lut_bits=lut_bits))
        need = known[lut_bits]
        if need["ram"] + reserve_ram <= board.ram_bytes and need["flash"] <= board.flash_bytes:
            return lut_bits, need
    return LUT_BITS[-1], check_fits(lower(graph, lut_bits=LUT_BITS[-1]), board)


def emit(graph: Graph, binary_kernels: bool = True, name: str | None = None, lut_bits: int = 8) -> dict[str, str]:
    """The library's files: NAME.h and NAME.c (`name`, default the model's; xnorkit.naming) with the kernels, the
    batch runners and the build files; `lut_bits` as lower takes it (fit chooses it for a board)."""
    name = naming.check(name or graph.name)
    if f"{name}.c" in (*LIBRARY.values(), *TEMPLATES.values()):
        raise XnorkitError(f"--name {name} is the name of one of the library's own files; choose another")
    prog = lower(graph, binary_kernels, lut_bits)
    calls = [text.format(*(t.macro for t in tensors)) + (f"  /* {comment} */" if comment else "")
             for text, tensors, comment in prog.calls]
    k = prog.input_call  # NAME_infer and NAME_infer_int differ in this step only
    if k < 0:
        raise XnorkitError("the C generator needs the network's input quantizer (a Quantize node) first")
    int_input = prog.int_input.format(*(t.macro for t in prog.calls[k][1])) + f"  /* {prog.calls[k][2]} */"
    # with early exits, the index of the exit taken follows the outputs (golden.with_exits)
    output_size = graph.result_width()
    names = {"name": name, "NAME": name.upper()}
    source = _SOURCE.render(tables=prog.tables, structs=prog.structs, prefix=calls[:k], float_input=calls[k],
                            int_input=int_input, layers=calls[k + 1:], tensors=prog.tensors, arena_bytes=prog.bytes,
                            arena_words=max(1, prog.bytes // 4), result=prog.result, **names)
    files = {
        f"{name}.h": _HEADER.render(input_size=int(np.prod(graph.input_shape)), output_size=output_size,
                                    activation_bytes=prog.bytes, weight_bytes=prog.weight_bytes, steps=len(calls),
                                    input_ctype=prog.input_ctype, input_type=prog.input_type,
                                    **names),
        f"{name}.c": source,
    }
    for library, path in LIBRARY.items():
        files[path] = tools.package_text("xnorkit.firmware", *library.split("/"))
    # the library's version: xnorkit's, and the model's own digest, which tells two builds of one name apart
    version = f"{xnorkit.__version__}+{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    for template, path in TEMPLATES.items():
        text = tools.package_text("xnorkit.firmware", *template.split("/"))
        files[path] = _render(text, version=version, xnorkit_version=xnorkit.__version__, **names)
    files["link.ld"] = link_script(boards.load_kind(LINK_BOARD, "mcu"))
    return files


def link_script(board) -> str:
    """The linker script of an emulated board (cortex_m4/link.ld.j2): its flash, and its RAM or one memory."""
    text = tools.package_text("xnorkit.firmware", "cortex_m4", "link.ld.j2")
    return _render(text, board=board.name, cpu=board.cpu, flash_origin=board.flash_origin,
                   flash_bytes=board.flash_bytes, ram_origin=board.ram_origin, ram_bytes=board.ram_bytes)


def _render(template: str, **context) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(template).render(context)


def library_name(fw_dir: Path) -> str:
    """The name of a generated library folder (its library.json), checked: what the runners build."""
    path = Path(fw_dir) / "library.json"
    regenerate = f"regenerate it with `xnorkit firmware` ({fw_dir})"
    try:
        name = json.loads(path.read_text())["name"]
    except (OSError, ValueError, KeyError, TypeError):
        raise XnorkitError(f"{fw_dir} is not a generated firmware folder (no readable library.json); "
                           f"{regenerate}") from None
    try:
        naming.check(name)
    except XnorkitError:
        raise XnorkitError(f"{path} names the library {str(name)[:40]!r}, not a model name; {regenerate}") from None
    if not (Path(fw_dir) / f"{name}.c").is_file():
        raise XnorkitError(f"{fw_dir} has no {name}.c; {regenerate}")
    return name
