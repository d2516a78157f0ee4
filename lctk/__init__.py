"""lctk, the Latent Constraints Toolkit.

Make an unconditional generative model generate conditionally without retraining it: learn critics and
actors in its latent space (Engel, Hoffman & Roberts, ICLR 2018).
"""

__version__ = "0.1.0"

#: Version of the on-disk layout of run folders, latent stores and constraints. A run written with another
#: format version is refused with a clear message instead of being misread.
FORMAT_VERSION = 1

from lctk.errors import LctkError  # noqa: E402
from lctk.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "FORMAT_VERSION", "LctkError", "hookimpl"]
