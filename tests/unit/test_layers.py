"""The layers hold: command-line modules only parse, call and print, and nothing below them
reaches up. Read from the source with ``ast`` (imports inside functions count too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

# The repository's folders and the package each one is (pyproject's package-dir).
PACKAGES = {"tradecredit": "tradecredit", "features": "tradecredit.features", "training": "tradecredit.training",
            "serving": "tradecredit.serving", "monitoring": "tradecredit.monitoring"}
SOURCE_FOLDERS = (*PACKAGES, "benchmarks", "tests")
ROOT_CLI = "tradecredit.cli"
CLI_SUPPORT = "tradecredit.cli_support"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    head = PACKAGES.get(parts[0], parts[0])
    name = ".".join((head, *parts[1:]))
    return name.removesuffix(".__init__")


def source_files() -> list[Path]:
    return sorted(p for folder in SOURCE_FOLDERS for p in (REPO / folder).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from tradecredit.features import cli` imports the module tradecredit.features.cli
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def is_command_line_module(name: str) -> bool:
    return name == ROOT_CLI or name.endswith(".cli") and name.startswith("tradecredit.")


CLI_MODULES = sorted(m for m in map(module_name, source_files()) if is_command_line_module(m))


def test_the_command_line_modules_are_found():
    # Guards the walk itself: if it found nothing, the rules below would pass on nothing.
    assert {ROOT_CLI, "tradecredit.features.cli", "tradecredit.training.cli", "tradecredit.monitoring.cli",
            "tradecredit.serving.cli", "tradecredit.serving.console.cli"} <= set(CLI_MODULES)
    assert len(source_files()) > 100


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_root_cli_imports_a_command_line_module(path):
    name = module_name(path)
    imported = {m for m in imported_modules(path) if is_command_line_module(m)}
    if name == ROOT_CLI:
        return
    # A test may drive the one program as a user would (typer's CliRunner on the root app).
    allowed = {ROOT_CLI} if name.startswith("tests.") else set()
    assert imported <= allowed, f"{name} imports command-line module(s) {sorted(imported - allowed)}: call the pipeline layer"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_below_the_command_line_imports_typer(path):
    name = module_name(path)
    if is_command_line_module(name) or name == CLI_SUPPORT or name.startswith("tests."):
        return
    imported = imported_modules(path)
    assert "typer" not in {m.split(".")[0] for m in imported}, f"{name} imports Typer: only command-line modules may"
    assert CLI_SUPPORT not in imported, f"{name} imports {CLI_SUPPORT}: only command-line modules may"


BOOSTER_OR_CALIBRATOR = re.compile(r"\.(booster|calibrator)\b")


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_model_touches_its_booster_and_calibrator(path):
    if module_name(path) == "tradecredit.training.model" or path == Path(__file__):
        return
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if BOOSTER_OR_CALIBRATOR.search(line)]
    assert not hits, f"score and explain through CreditModel, not its booster or calibrator: {hits}"


def test_the_layer_rules_catch_a_violation(tmp_path):
    """The checks above on a planted module: a stage that imports a CLI, Typer and the booster."""
    planted = REPO / "monitoring" / "_planted_for_test.py"
    text = "import typer\nfrom tradecredit.training import cli\n\ndef f(m):\n    return m.booster.predict(1)\n"
    assert {"typer", "tradecredit.training.cli"} <= imported_modules(_write(tmp_path, text))
    assert BOOSTER_OR_CALIBRATOR.search(text)
    assert is_command_line_module("tradecredit.training.cli") and not is_command_line_module("tradecredit.training.pipeline")
    assert module_name(planted) == "tradecredit.monitoring._planted_for_test"


def _write(folder: Path, text: str) -> Path:
    path = folder / "planted.py"
    path.write_text(text, encoding="utf-8")
    return path
