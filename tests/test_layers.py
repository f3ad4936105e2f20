"""Every module of monitor/ has a place in the import-linter layers (docs/notes/README.md)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import monitor

ROOT = Path(monitor.__file__).parent


def _layered() -> set[str]:
    pyproject = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    contracts = pyproject["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    return {name.strip() for layer in layers for name in layer.split("|")}


def test_every_module_and_package_is_in_a_layer() -> None:
    children = {
        f"monitor.{path.stem}"
        for path in ROOT.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").is_file())
    }
    assert children - _layered() == set()
