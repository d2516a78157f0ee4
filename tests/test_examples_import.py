"""The example scripts of examples/ still import and parse their options against the current lctk (their full
runs train on all of Fashion-MNIST and are measured in docs/results.md, not here)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def example(monkeypatch):
    """Import ``examples/NAME.py`` as a module (its folder on sys.path, as when it runs as a script)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)
    return load


@pytest.mark.parametrize("name", ["pythae_fashion_mnist", "diffusers_fashion_mnist", "dcgan_fashion_mnist"])
def test_example_imports_and_parses_its_options(example, name, monkeypatch, capsys):
    module = example(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as stop:
        module.main()
    assert stop.value.code == 0 and "--epochs" in capsys.readouterr().out


def test_dcgan_example_networks_fit_fashion_mnist(example):
    module = example("dcgan_fashion_mnist")
    gen = module.DCGANGenerator(module.DCGANConfig(latent_dim=8, width=4))
    disc = module.Discriminator(width=4)
    images = gen(torch.randn(3, 8))  # (3, 1, 28, 28) in [-1, 1]
    assert images.shape == (3, 1, 28, 28) and disc(images).shape == (3,)
