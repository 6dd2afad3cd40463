"""Backend: Google's pycoral (``pycoral.utils.edgetpu.make_interpreter``).

PyPI's ``pycoral`` is an unrelated package; Google's comes as ``python3-pycoral`` from the Coral
apt repository (or its own wheels), so the probe checks for the module that only Google's has.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from usbtrace.capture.backends.base import (
    Backend,
    BackendFailed,
    BackendUnavailable,
    RuntimeInfo,
    fixed_input,
)


class PycoralBackend(Backend):
    name = "pycoral"

    def __init__(self, model_path: str | Path, *, device: str = "usb") -> None:
        self.model_path = str(model_path)
        self.device = device
        self._edgetpu: Any = None
        self._interpreter: Any = None

    def probe(self) -> RuntimeInfo:
        try:
            self._edgetpu = importlib.import_module("pycoral.utils.edgetpu")
        except ImportError as exc:
            try:
                importlib.import_module("pycoral")
            except ImportError:
                raise BackendUnavailable(
                    "Google's pycoral is not installed: install python3-pycoral from the Coral"
                    " apt repository, or use --backend tflite"
                ) from exc
            raise BackendUnavailable(
                "the installed 'pycoral' is not Google's (PyPI's pycoral is an unrelated package):"
                " pip uninstall pycoral, then install python3-pycoral from the Coral apt repository"
            ) from exc
        try:
            version = self._edgetpu.get_runtime_version()
        except (RuntimeError, OSError) as exc:
            raise BackendUnavailable(f"pycoral cannot load libedgetpu: {exc}") from exc
        return RuntimeInfo(backend=self.name, runtime="pycoral", libedgetpu=str(version))

    def open(self) -> None:
        if self._edgetpu is None:
            self.probe()
        try:
            interpreter = self._edgetpu.make_interpreter(self.model_path, device=self.device)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendFailed(f"{self.model_path}: pycoral failed to open it: {exc}") from exc
        detail = interpreter.get_input_details()[0]
        self._input = fixed_input(tuple(detail["shape"]), detail["dtype"])
        self._input_index = detail["index"]
        self._interpreter = interpreter

    def invoke(self) -> None:
        try:
            self._interpreter.set_tensor(self._input_index, self._input)
            self._interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise BackendFailed(f"invoke failed: {exc}") from exc

    def close(self) -> None:
        self._interpreter = None
