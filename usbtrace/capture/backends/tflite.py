"""Backend: a TFLite interpreter with the Edge TPU delegate (tflite-runtime or ai-edge-litert)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from usbtrace.capture.backends.base import (
    LIBEDGETPU,
    Backend,
    BackendFailed,
    BackendUnavailable,
    RuntimeInfo,
    fixed_input,
    libedgetpu_version,
)

# Interpreter modules in the order tried; each has Interpreter and load_delegate. ai-edge-litert
# first: tflite-runtime's last wheels (2.14) were built against numpy 1, and beside numpy 2 the
# module imports but creating an Interpreter fails, so taking it first would break a host that
# has both (Coral's apt tflite_runtime through --system-site-packages, say).
INTERPRETER_MODULES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)

INSTALL_HINT = (
    "install a TFLite interpreter (pip install ai-edge-litert; tflite-runtime works with numpy 1"
    " only) and the Edge TPU runtime libedgetpu1-std from the Coral apt repository"
)
# What an interpreter built against numpy 1 raises beside numpy 2 when an Interpreter is made
# (tflite-runtime 2.14: SystemError "... returned a result with an exception set", after numpy's
# "compiled using NumPy 1.x" message; ImportError or AttributeError "_ARRAY_API" elsewhere).
NUMPY_ABI_ERRORS = (SystemError, ImportError, AttributeError)


def numpy_abi_hint(dist: str, exc: BaseException) -> str:
    import numpy

    return (
        f"{dist} cannot create an interpreter beside numpy {numpy.__version__} ({exc!r}): "
        "its wheels were built for numpy 1; install ai-edge-litert, or numpy<2"
    )


def find_interpreter_module() -> tuple[ModuleType, str] | None:
    for module_name, dist in INTERPRETER_MODULES:
        try:
            return importlib.import_module(module_name), dist
        except ImportError:
            continue
    return None


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class TfliteBackend(Backend):
    name = "tflite"

    def __init__(self, model_path: str | Path, *, device: str = "usb") -> None:
        self.model_path = str(model_path)
        self.device = device  # libedgetpu's "usb", "usb:0", ...
        self._module: ModuleType | None = None
        self._dist = ""
        self._interpreter: Any = None
        self._input: Any = None

    def probe(self) -> RuntimeInfo:
        found = find_interpreter_module()
        if found is None:
            raise BackendUnavailable(f"no TFLite interpreter found: {INSTALL_HINT}")
        self._module, dist = found
        self._dist = dist
        version = libedgetpu_version()
        if version is None:
            raise BackendUnavailable(
                f"{LIBEDGETPU} cannot be loaded: install libedgetpu1-std (or libedgetpu1-max)"
                " from the Coral apt repository"
            )
        return RuntimeInfo(
            backend=self.name,
            runtime=f"{dist} {_dist_version(dist) or '?'}",
            libedgetpu=version,
            details={"delegate_options": {"device": self.device}},
        )

    def open(self) -> None:
        if self._module is None:
            self.probe()
        module = self._module
        assert module is not None
        try:
            delegate = module.load_delegate(LIBEDGETPU, {"device": self.device})
            interpreter = module.Interpreter(
                model_path=self.model_path, experimental_delegates=[delegate]
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendFailed(
                f"{self.model_path}: Edge TPU delegate failed to open: {exc}"
            ) from exc
        except NUMPY_ABI_ERRORS as exc:
            raise BackendFailed(numpy_abi_hint(self._dist, exc)) from exc
        detail = interpreter.get_input_details()[0]
        self._input = fixed_input(tuple(detail["shape"]), detail["dtype"])
        self._input_index = detail["index"]
        self._interpreter = interpreter

    def invoke(self) -> None:
        interp = self._interpreter
        try:
            interp.set_tensor(self._input_index, self._input)
            interp.invoke()
        except (ValueError, RuntimeError) as exc:
            raise BackendFailed(f"invoke failed: {exc}") from exc

    def close(self) -> None:
        # The delegate closes the device when the interpreter is collected.
        self._interpreter = None
