"""The wheel installs everything below ``tunewise/`` and nothing generic at the top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = {"advisor": "tunewise/advisor", "methods": "tunewise/methods", "plugins": "tunewise/plugins"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("tunewise-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_nothing_generic_at_top_level(wheel_files: list[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_files}
    assert all(t == "tunewise" or t.startswith("tunewise-") for t in tops), tops
    assert not {"advisor", "methods", "plugins"} & tops


def test_every_source_file_is_in_the_wheel(wheel_files: list[str]) -> None:
    missing = []
    for folder, target in SOURCE_ROOTS.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(REPO / folder).as_posix()
            if f"{target}/{rel}" not in wheel_files:
                missing.append(f"{folder}/{rel}")
    assert not missing, f"not packaged (add the package to pyproject's list or package-data): {missing}"


def test_console_script_declared(wheel_files: list[str]) -> None:
    assert any(n.endswith(".dist-info/entry_points.txt") for n in wheel_files)


def test_generic_names_not_importable_outside_the_repo(tmp_path: Path) -> None:
    for name in ("plugins", "advisor", "methods"):
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode != 0, f"`import {name}` worked: a generic package leaked into site-packages"
        assert "ModuleNotFoundError" in proc.stderr
