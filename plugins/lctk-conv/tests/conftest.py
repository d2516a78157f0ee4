"""Fixtures of the image plugin's tests: a tiny generated CelebA, and the core's shared fixtures."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

try:
    import tests.conftest  # noqa: F401  (the repository root is on sys.path under `python -m pytest`)
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.conftest import digits_dir, fresh_plugins, run_cli  # noqa: E402,F401  (fixtures reused here)

from conv_fixtures import make_celeba  # noqa: E402


@pytest.fixture(scope="session")
def celeba_template(tmp_path_factory) -> Path:
    """A generated CelebA folder, shared read-only (copy it with `celeba_dir` to change it)."""
    return make_celeba(tmp_path_factory.mktemp("celeba-template") / "celeba")


@pytest.fixture
def celeba_dir(tmp_path, celeba_template, monkeypatch) -> Path:
    """A private copy of the generated CelebA folder (its cache starts empty); LCTK_CACHE inside tmp_path."""
    monkeypatch.setenv("LCTK_CACHE", str(tmp_path / "user-cache"))
    return Path(shutil.copytree(celeba_template, tmp_path / "celeba"))
