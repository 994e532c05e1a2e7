"""The package's shape: one ``glasskey`` namespace, core never imports the UI.

The repository keeps ``core/`` and ``tui/`` at the top, but they install as
``glasskey.core`` and ``glasskey.tui``: a bare ``core`` package would collide with
other distributions (and two import names for one module would mean two copies of
every exception class, so ``except VaultError`` would miss the other copy's errors).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import glasskey.core
import pytest

ROOT = Path(__file__).resolve().parent.parent


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(glasskey.core.__path__, "glasskey.core."))


def test_core_has_modules_to_check() -> None:
    assert {"glasskey.core.vault", "glasskey.core.store", "glasskey.core.audit",
            "glasskey.core.checkout"} <= set(core_modules())


def test_no_core_module_pulls_in_textual_or_tui() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m.split('.')[0] == 'textual' or m.startswith('glasskey.tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "", f"core imports UI modules: {out.stdout}"


def test_the_test_process_has_no_bare_core_or_tui() -> None:
    """pytest's path puts ``tests/`` on sys.path, not the repository root."""
    assert str(ROOT) not in [str(Path(p).resolve()) for p in sys.path if p]
    for bare in ("core", "tui"):
        assert bare not in sys.modules, f"a bare {bare!r} module was imported"
        with pytest.raises(ModuleNotFoundError):
            __import__(bare)


def test_no_source_imports_a_bare_core_or_tui() -> None:
    bad = []
    for folder in ("core", "tui", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                # statements, and code strings run by child processes (a child importing the bare name)
                for part in line.replace('"', ";").replace("'", ";").split(";"):
                    words = part.split()
                    if words[:1] in (["from"], ["import"]) and len(words) > 1 and \
                            words[1].split(".")[0] in ("core", "tui") and \
                            "ModuleNotFoundError" not in line:
                        bad.append(f"{path.relative_to(ROOT)}:{n}")
    assert bad == []


@pytest.mark.slow
def test_the_wheel_installs_only_glasskey(tmp_path: Path) -> None:
    """A fresh ``pip install .`` puts ``glasskey`` and its metadata in site-packages, nothing else."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "setuptools" in built.stderr:
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
             "-w", str(tmp_path / "dist"), str(ROOT)],
            capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("glasskey-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"glasskey", next(t for t in tops if t.endswith(".dist-info"))}
    assert "glasskey/core/py.typed" in names and "glasskey/tui/py.typed" in names
    assert "glasskey/tui/glasskey.tcss" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import glasskey.core.vault, glasskey.tui.cli\n"
             "try:\n    import core\nexcept ModuleNotFoundError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry).decode()
    assert "glasskey.tui.cli:run" in text
    assert "glasskey.core.connectors.postgres:PostgresConnector" in text


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    """package-dir maps folders to names, so a new subpackage must be named in pyproject."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"glasskey." + ".".join(p.parent.relative_to(ROOT).parts)
             for top in ("core", "tui") for p in (ROOT / top).rglob("__init__.py")}
    assert found == listed
