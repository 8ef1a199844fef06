"""The layering contracts of pyproject.toml (``[tool.importlinter]``), run by
``lint-imports`` as ``make lint`` runs it.

Each contract is checked on the real ``app`` package, one test a contract, so a
failure names the contract. The contracts are also run on a small made-up ``app``
tree that keeps them all, then with one forbidden import added at a time: that
shows each contract really breaks when its rule is broken, whatever the state of
the real code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

CONFIG: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "importlinter"
]
CONTRACTS: list[dict[str, Any]] = CONFIG["contracts"]


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", *args],
        cwd=cwd,
        # The checked tree's ``app`` first (the real one, or the made-up one).
        env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("contract", [c["id"] for c in CONTRACTS])
def test_the_app_keeps_the_contract(contract: str) -> None:
    result = lint_imports(ROOT, "--contract", contract, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


# --- the contracts can fail ----------------------------------------------------------


def _made_up_tree(tmp_path: Path) -> Path:
    """An ``app`` package with every module the contracts name and no import at all,
    and a copy of the contracts (pyproject.toml) next to it."""
    modules = {CONFIG["root_package"]}
    for contract in CONTRACTS:
        modules.update(contract["source_modules"], contract["forbidden_modules"])
    for module in sorted(modules):
        parts = module.split(".")
        package = tmp_path.joinpath(*parts)
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").touch()
        for depth in range(1, len(parts)):  # the parents are packages too
            tmp_path.joinpath(*parts[:depth], "__init__.py").touch()
    (tmp_path / "pyproject.toml").write_text(_as_toml(CONFIG))
    return tmp_path


def _as_toml(config: dict[str, Any]) -> str:
    """The ``[tool.importlinter]`` table again (strings and lists of strings: JSON's
    spelling of them is TOML's)."""
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in config.items() if k != "contracts"]
    for contract in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in contract.items()]
    return "\n".join(lines) + "\n"


def test_a_tree_without_forbidden_imports_keeps_every_contract(tmp_path: Path) -> None:
    tree = _made_up_tree(tmp_path)
    result = lint_imports(tree, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["id"] for c in CONTRACTS])
def test_one_forbidden_import_breaks_its_contract(tmp_path: Path, contract: dict[str, Any]) -> None:
    tree = _made_up_tree(tmp_path)
    importer, imported = contract["source_modules"][0], contract["forbidden_modules"][0]
    init = tree.joinpath(*importer.split("."), "__init__.py")
    init.write_text(f"import {imported}\n")

    result = lint_imports(tree, "--no-cache")

    assert result.returncode != 0, result.stdout
    assert f"{contract['name']} BROKEN" in result.stdout
    assert f"{importer} -> {imported}" in result.stdout
