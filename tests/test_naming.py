"""Names (xnorkit.naming, `--name`): two accelerators in one Verilator top and two models in one Cortex-M4
firmware, each exact against its golden; the default names from the model file; bad names refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import random_graph, require_tool
from xnorkit import build, golden, ir, naming
from xnorkit.errors import XnorkitError

# two different networks: their modules and memories share nothing but the names' prefixes
NETWORKS = {"net_a": [16, 32, 10], "net_b": [24, 40, 24, 6]}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    builds = {}
    for seed, (name, sizes) in enumerate(NETWORKS.items()):
        graph = random_graph(sizes, seed=seed)
        ir.save(graph, root / name)
        builds[name] = (root / name, graph)
    return root, builds


def test_two_named_accelerators_simulate_together_in_one_top(two_builds):
    """net_a and net_b (`hw --name`), every file of both in one folder without a clash, in one Verilator top;
    both streams at once with random stalls, each bit-exact against its golden."""
    from xnorkit.sim import runner

    require_tool("verilator")
    root, builds = two_builds
    designs = {}
    for name, (path, _) in builds.items():
        build.generate_hw(path, target_cycles=8, name=name)
        designs[f"{name[-1]}_"] = json.loads((path / "rtl" / "design.json").read_text())
    files = [{p.name for p in (path / "rtl").iterdir() if p.suffix in (".sv", ".mem")} for path, _ in builds.values()]
    assert not files[0] & files[1] and all(f.startswith(("net_a_",)) for f in files[0])
    assert designs["a_"]["top"] == "net_a_top" and designs["b_"]["shell"]["top"] == "net_b_shell"
    header = (builds["net_a"][0] / "rtl" / "net_a_top.sv").read_text().split("module net_a_top")[0]
    assert f"s_axis: an inference's input, {designs['a_']['input']['beats']} beat(s)" in header
    assert "rst_n is synchronous and active low" in header
    (root / "two_nets.sv").write_text(runner.side_by_side("two_nets", designs))
    inputs = {f"{name[-1]}_": golden.random_int_inputs(graph, 12, seed=4) for name, (_, graph) in builds.items()}
    expected = {p: golden.predict_from_int(builds[f"net_{p[0]}"][1], x) for p, x in inputs.items()}
    results = runner.simulate_system(root / "two_nets.sv", "two_nets",
                                     {f"{name[-1]}_": path / "rtl" for name, (path, _) in builds.items()},
                                     inputs, expected, stall=0.3, seed=1)
    for prefix, result in results.items():
        assert result.mismatch is None and np.array_equal(result.outputs, expected[prefix]), prefix


def test_default_names_come_from_the_model_file_and_bad_names_are_refused():
    assert naming.from_model("models/TFC-w2a2.onnx") == "tfc_w2a2"
    assert naming.from_model("2layer.qonnx.onnx") == "m_2layer"
    assert naming.from_model("___.onnx") == naming.DEFAULT
    for bad in ("Lfc", "lfc-w1a1", "_lfc", "lfc_", "a__b", "x" * 33, "1net", ""):
        with pytest.raises(XnorkitError, match="is not a name"):
            naming.check(bad)
    assert naming.check("lfc_w1a1") == "lfc_w1a1"


_TWO_MODELS_MAIN = """\
#include <stdio.h>

#include "net_a.h"
#include "net_b.h"

/* both models in one firmware: each input file through its model, each output file written */
int main(void) {
    static float in_a[NET_A_INPUT_SIZE], in_b[NET_B_INPUT_SIZE];
    static int32_t out_a[NET_A_OUTPUT_SIZE], out_b[NET_B_OUTPUT_SIZE];
    FILE *fa = fopen("a.in", "rb"), *fb = fopen("b.in", "rb");
    FILE *ga = fopen("a.out", "wb"), *gb = fopen("b.out", "wb");
    if (!fa || !fb || !ga || !gb) return 1;
    while (fread(in_a, sizeof in_a[0], NET_A_INPUT_SIZE, fa) == NET_A_INPUT_SIZE &&
           fread(in_b, sizeof in_b[0], NET_B_INPUT_SIZE, fb) == NET_B_INPUT_SIZE) {
        (void)net_a_infer(in_a, out_a);
        (void)net_b_infer(in_b, out_b);
        fwrite(out_a, sizeof out_a[0], NET_A_OUTPUT_SIZE, ga);
        fwrite(out_b, sizeof out_b[0], NET_B_OUTPUT_SIZE, gb);
    }
    fclose(fa); fclose(fb); fclose(ga); fclose(gb);
    return 0;
}
"""


def test_two_named_models_link_into_one_cortex_m4_firmware(two_builds):
    """`firmware --name net_a` and `--name net_b`, each its own folder, compiled and linked into one Cortex-M4
    program (-Wall -Wextra -Werror) that runs both under QEMU: each exact against its golden."""
    import subprocess

    from tests.conftest import random_inputs
    from xnorkit import tools
    from xnorkit.firmware import emit_c, runner
    from xnorkit.outputs import write_tree

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        require_tool(tool)
    root, builds = two_builds
    app = root / "app"
    app.mkdir()
    x, flags = {}, []
    for name, (_, graph) in builds.items():
        write_tree(root / f"fw_{name}", emit_c.emit(graph, name=name), "firmware")
        x[name] = random_inputs(graph, 20, seed=3)
        x[name].astype("<f4").tofile(app / f"{name[-1]}.in")
        flags += ["-I", str(root / f"fw_{name}"), str(root / f"fw_{name}" / f"{name}.c")]
    (app / "main.c").write_text(_TWO_MODELS_MAIN)
    board = root / "fw_net_a"
    proc = subprocess.run([tools.require("arm-none-eabi-gcc"), *runner.M4_FLAGS, *runner.WARNINGS,
                           "--specs=rdimon.specs", "-T", str(board / "link.ld"), "-Wl,--gc-sections",
                           str(board / "startup.c"), "main.c", *flags, "-lc", "-lrdimon", "-lm", "-lgcc", "-o",
                           "app.elf"], cwd=app, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(runner._qemu(app / "app.elf"), cwd=app, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, (_, graph) in builds.items():
        expected = golden.predict_int(graph, x[name])
        got = np.fromfile(app / f"{name[-1]}.out", dtype="<i4").reshape(expected.shape)
        assert np.array_equal(got, expected), name
