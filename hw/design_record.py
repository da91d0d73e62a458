"""The schema of design.json (what `xnorkit hw` writes beside the RTL): every key the simulators, synthesis,
the Vivado project and the report read, with its type and range. emit_sv.load_design holds a design to it."""

from __future__ import annotations

from typing import Literal

from xnorkit.records import Count, FileName, Identifier, Positive, Record


class Stream(Record):
    features: Positive
    elems_per_beat: Positive
    elem_bits: Positive
    beats: Positive
    shape: list[Positive]
    layout: Literal["flat", "hwc"]
    signed: bool = False


class Layer(Record):
    name: FileName
    kind: str
    cycles: Count
    lut: Count
    ff: Count
    memory_bits: Count
    pe: Positive | None = None
    simd: Positive | None = None


class Resources(Record):
    lut: Count
    ff: Count
    memory_bits: Count


class Shell(Record):
    top: Identifier
    sources: list[FileName]
    parameters: dict[Identifier, int]


class Fold(Record):
    pe: Positive
    simd: Positive
    weights: str = "auto"


class WritableLayer(Record):
    stage: Count
    name: FileName
    base: Count
    weight_words: Positive
    weight_bits: Positive
    w_stride_log2: Count
    threshold_words: Count
    threshold_bits: Count
    t_stride_log2: Count
    t_offset: Count


class Writable(Record):
    """The AXI4-Lite register map of the writable layers (hw.config_map)."""

    id: Count
    addr_bits: Positive
    region_log2: Count
    layers: list[WritableLayer]


class Design(Record):
    top: Identifier
    input: Stream
    output: Stream
    layers: list[Layer]
    resources: Resources
    initiation_interval: Positive
    latency_estimate: Count
    folding: dict[FileName, Fold]
    sources: list[FileName]
    memories: list[FileName]
    shell: Shell | None = None
    writable: Writable | None = None
    name: Identifier = "xnorkit"  # the design's name (xnorkit.naming), the prefix of its modules and files
