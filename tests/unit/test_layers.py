"""The layers hold: command-line modules only parse, call and print, and nothing below them
reaches up. Read from the source with ``ast`` (imports inside functions count too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path


from tests.conftest import REPO

# The repository's folders and the package each one is (pyproject's package-dir).
PACKAGES = {"tradecredit": "tradecredit", "features": "tradecredit.features", "training": "tradecredit.training",
            "serving": "tradecredit.serving", "monitoring": "tradecredit.monitoring", "credit": "tradecredit.credit",
            "insurance": "tradecredit.insurance"}
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


def cli_import_violations(path: Path) -> list[str]:
    name = module_name(path)
    if name == ROOT_CLI:
        return []
    imported = {m for m in imported_modules(path) if is_command_line_module(m)}
    # A test may drive the one program as a user would (typer's CliRunner on the root app).
    allowed = {ROOT_CLI} if name.startswith("tests.") else set()
    return [f"{name} imports command-line module {m}: call the pipeline layer" for m in sorted(imported - allowed)]


def typer_violations(path: Path) -> list[str]:
    name = module_name(path)
    if is_command_line_module(name) or name == CLI_SUPPORT or name.startswith("tests."):
        return []
    imported = imported_modules(path)
    found = [f"{name} imports Typer: only command-line modules may"] if "typer" in {m.split(".")[0] for m in imported} else []
    return found + ([f"{name} imports {CLI_SUPPORT}: only command-line modules may"] if CLI_SUPPORT in imported else [])


BOOSTER_OR_CALIBRATOR = re.compile(r"\.(booster|calibrator)\b")


def booster_violations(path: Path) -> list[str]:
    if module_name(path) == "tradecredit.training.model" or path == Path(__file__):
        return []
    return [f"{path.relative_to(REPO)}:{i}: {line.strip()} (score and explain through CreditModel)"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if BOOSTER_OR_CALIBRATOR.search(line)]


def test_only_the_root_cli_imports_a_command_line_module():
    assert [v for path in source_files() for v in cli_import_violations(path)] == []


def test_nothing_below_the_command_line_imports_typer():
    assert [v for path in source_files() for v in typer_violations(path)] == []


def test_only_the_model_touches_its_booster_and_calibrator():
    assert [v for path in source_files() for v in booster_violations(path)] == []


def test_the_layer_rules_catch_a_violation():
    """Each rule above on a planted stage module that imports a CLI and Typer and reads the booster."""
    planted = REPO / "monitoring" / "_planted_for_test.py"
    planted.write_text("import typer\nfrom tradecredit.training import cli\n\ndef f(m):\n    return m.booster.predict(1)\n", encoding="utf-8")
    try:
        assert cli_import_violations(planted) == [
            "tradecredit.monitoring._planted_for_test imports command-line module tradecredit.training.cli: call the pipeline layer"]
        assert typer_violations(planted) == ["tradecredit.monitoring._planted_for_test imports Typer: only command-line modules may"]
        assert len(booster_violations(planted)) == 1
    finally:
        planted.unlink()
