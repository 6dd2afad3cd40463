"""Data flows one way through the layers: no module imports a layer above its own.

file formats -> USB model -> Edge TPU protocol -> analysis -> reports and CLI. The model parser
(``usbtrace/models``) sits beside them: the analysis holds a model's name (``models.identity``)
but never parses a model; identification and reconciliation are the pipeline's model stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import usbtrace

PACKAGE = Path(usbtrace.__file__).parent
ORDER = ("formats", "usb", "edgetpu", "analysis")  # each may import only those before it
# the exceptions, each a module of plain values: the metadata schema checks a link speed's name
# against the USB layer's list; the analysis carries a model's name and how it is known
ALLOWED = {
    "formats": ("usbtrace.usb.link",),
    "analysis": ("usbtrace.models.identity",),
}


def imports_of(path: Path) -> set[str]:
    """Every ``usbtrace...`` module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "usbtrace" or m.startswith("usbtrace.")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("layer", ORDER)
def test_no_layer_imports_one_above_it(layer: str) -> None:
    below = set(ORDER[: ORDER.index(layer) + 1]) | {"errors", "intervals", "background"}
    wrong = []
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for module in sorted(imports_of(path)):
            target = layer_of(module)
            if target in below:
                continue
            if module in ALLOWED.get(layer, ()):
                continue
            wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from usbtrace.report import table\n    import usbtrace.cli.main\n")
    assert imports_of(f) == {"usbtrace.report", "usbtrace.cli.main"}


def test_the_pipeline_is_the_only_analysis_caller_of_the_model_parser() -> None:
    assert "usbtrace.models.identify" in imports_of(PACKAGE / "pipeline.py")
    assert not any(
        m.startswith("usbtrace.models") and m != "usbtrace.models.identity"
        for p in (PACKAGE / "analysis").glob("*.py")
        for m in imports_of(p)
    )


def test_the_model_parser_imports_no_command_or_report() -> None:
    """``usbtrace/models`` sits beside the layers, below the pipeline, reports and CLI: a
    command hands it what it needs (the compiler's output is written through the command's
    ``OutputGuard``, passed in)."""
    above = ("usbtrace.cli", "usbtrace.report", "usbtrace.pipeline", "usbtrace.capture")
    wrong = [
        f"{p.name} imports {m}"
        for p in sorted((PACKAGE / "models").glob("*.py"))
        for m in sorted(imports_of(p))
        if m.startswith(above)
    ]
    assert not wrong
