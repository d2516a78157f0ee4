"""lctk-mlp: an example third-party lctk plugin providing the ``mlp`` VAE backbone."""

__version__ = "0.1.0"
