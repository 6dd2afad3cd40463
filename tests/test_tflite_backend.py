"""Which TFLite interpreter the ``tflite`` backend takes, and what it says when the one it has
cannot work: tflite-runtime's wheels were built for numpy 1, and beside numpy 2 the module
imports but creating an Interpreter fails (README, "Libraries")."""

from __future__ import annotations

import sys
import types

import pytest

from usbtrace.capture.backends import tflite
from usbtrace.capture.backends.base import BackendFailed


class _Delegate:
    pass


def _fake_module(name: str, interpreter: type) -> types.ModuleType:
    module = types.ModuleType(name)
    module.Interpreter = interpreter  # type: ignore[attr-defined]
    module.load_delegate = lambda library, options: _Delegate()  # type: ignore[attr-defined]
    return module


class _BuiltForNumpy1:
    """What tflite-runtime 2.14's Interpreter does beside numpy 2 (checked with numpy 2.4)."""

    def __init__(self, **kwargs: object) -> None:
        raise SystemError(
            "<built-in method CreateWrapperFromFile of PyCapsule object> returned a result "
            "with an exception set"
        )


class _Works:
    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict]:
        import numpy as np

        return [{"shape": (1, 4), "dtype": np.int8, "index": 0}]


@pytest.fixture
def runtime(monkeypatch):
    monkeypatch.setattr(tflite, "libedgetpu_version", lambda: "test")

    def install(name: str, interpreter: type | None) -> None:
        package = name.split(".")[0]
        if interpreter is None:  # not installed
            monkeypatch.setitem(sys.modules, name, None)
            return
        monkeypatch.setitem(sys.modules, package, types.ModuleType(package))
        monkeypatch.setitem(sys.modules, name, _fake_module(name, interpreter))

    return install


def test_ai_edge_litert_is_taken_before_tflite_runtime(runtime, tmp_path):
    runtime("tflite_runtime.interpreter", _BuiltForNumpy1)
    runtime("ai_edge_litert.interpreter", _Works)
    backend = tflite.TfliteBackend(tmp_path / "m_edgetpu.tflite")
    assert backend.probe().runtime.startswith("ai-edge-litert")
    backend.open()  # failed before: tflite-runtime was taken first and its SystemError escaped
    assert isinstance(backend._interpreter, _Works)


def test_tflite_runtime_beside_numpy_2_is_one_clear_failure(runtime, tmp_path):
    runtime("ai_edge_litert.interpreter", None)
    runtime("tflite_runtime.interpreter", _BuiltForNumpy1)
    backend = tflite.TfliteBackend(tmp_path / "m_edgetpu.tflite")
    with pytest.raises(BackendFailed, match="built for numpy 1; install ai-edge-litert"):
        backend.open()


def test_install_hint_names_the_interpreter_that_works_with_numpy_2():
    assert "pip install ai-edge-litert" in tflite.INSTALL_HINT
