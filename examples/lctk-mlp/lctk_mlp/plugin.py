"""The module named by this distribution's ``lctk`` entry point: lctk calls the hooks marked here."""

from lctk import hookimpl


@hookimpl
def register_backbones(register):
    """Offer the MLP VAE as ``--backbone mlp``."""
    # a "module:attribute" reference, imported when first used: `lctk plugins` imports no torch
    register("mlp", "lctk_mlp.model:MLPVAE", help="MLP VAE for any fixed-shape float data (Gaussian decoder, sigma_x 0.1)")
