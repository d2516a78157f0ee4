"""lctk-conv: the image plugin of lctk (conv VAE, image datasets, PNG writer, image evaluator)."""

__version__ = "0.1.0"
