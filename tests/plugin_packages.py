"""Real installs of plugin distributions for the plugin tests: the example plugin and two broken ones.

Each is installed with pip (offline: ``--no-index --no-deps --no-build-isolation``) into its own target
folder, so it is a real distribution with a real ``lctk`` entry point; put the folder on ``sys.path`` or
``PYTHONPATH`` to "install" it. Installs happen once per test session (memoised here, since two test modules
share them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lctk-mlp"

BROKEN_IMPORT = "lctk-broken-import"
BROKEN_HOOK = "lctk-broken-hook"

_installed: dict[str, Path] = {}


def pip_install(sources: list[Path], target: Path) -> Path:
    """``pip install`` the source folders into ``target`` without network, dependencies or build isolation."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
           "--no-cache-dir", "--disable-pip-version-check", "--target", str(target), *map(str, sources)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"pip install failed:\n{result.stdout}\n{result.stderr}")
    return target


def _copy_source(source: Path, dest: Path) -> Path:
    """A clean copy of a source tree, so building never writes build/ or *.egg-info into the repository."""
    return Path(shutil.copytree(source, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")))


def write_package(root: Path, dist: str, module: str, source: str) -> Path:
    """A minimal plugin distribution ``dist`` whose entry point names module ``module`` (given its source)."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=64"]\n'
                                         'build-backend = "setuptools.build_meta"\n')
    (root / "setup.cfg").write_text(textwrap.dedent(f"""\
        [metadata]
        name = {dist}
        version = 0.0.1

        [options]
        py_modules = {module}

        [options.entry_points]
        lctk =
            {module} = {module}
        """))
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def example_target(tmp_path_factory) -> Path:
    """A folder holding the installed example plugin ``lctk-mlp`` (built from examples/lctk-mlp)."""
    if "example" not in _installed:
        base = tmp_path_factory.mktemp("example-plugin")
        _installed["example"] = pip_install([_copy_source(EXAMPLE, base / "src")], base / "site")
    return _installed["example"]


def broken_target(tmp_path_factory) -> Path:
    """A folder holding two installed broken plugins: one raises on import, one inside its hook."""
    if "broken" not in _installed:
        base = tmp_path_factory.mktemp("broken-plugins")
        on_import = write_package(base / "import", BROKEN_IMPORT, "lctk_broken_import", """\
            raise RuntimeError("this plugin is broken on purpose")
            """)
        in_hook = write_package(base / "hook", BROKEN_HOOK, "lctk_broken_hook", """\
            from lctk import hookimpl


            @hookimpl
            def register_backbones(register):
                raise ValueError("this hook is broken on purpose")
            """)
        _installed["broken"] = pip_install([on_import, in_hook], base / "site")
    return _installed["broken"]


def lctk_subprocess(*args, paths: list[Path], cwd: Path, env: dict[str, str] | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the unchanged CLI (``python -m lctk ARGS``) in a fresh process with ``paths`` on PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if k != "LCTK_PLUGINS"}
    environ["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *filter(None, [environ.get("PYTHONPATH")])])
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "lctk", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=timeout)
