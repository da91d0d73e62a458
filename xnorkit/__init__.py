"""xnorkit: binary and low-bit neural networks from Brevitas training to bit-exact RTL and firmware.

The Python API (docs/python-api.md), loaded on first use so that `import xnorkit` stays light:

    import xnorkit
    xnorkit.compile("model.onnx", "build")
    hw = xnorkit.generate_hw("build", board="pynq-z2")
    fw = xnorkit.generate_firmware("build", board="stm32f4-discovery")
    y = xnorkit.predict("build", x, backend="c")
    result = xnorkit.verify("build", x, backends=["rtl", "c"])
"""

__version__ = "0.1.0"

_API = ("Compiled", "Firmware", "Hardware", "Verification", "compile", "generate_firmware", "generate_hw", "predict",
        "synth", "verify", "write_report")


def __getattr__(name: str):
    if name in _API:
        from xnorkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'xnorkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
