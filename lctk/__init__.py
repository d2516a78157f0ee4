"""lctk, the Latent Constraints Toolkit.

Make an unconditional generative model generate conditionally without retraining it: learn critics and
actors in its latent space (Engel, Hoffman & Roberts, ICLR 2018).
"""

import os as _os
import sys as _sys

# OpenMP worker threads that spin at barriers waiting for each other collapse when the cores are shared with other
# work: constraint training on 2 shared cores ran 20x slower with torch's default wait policy than with sleeping
# waits (docs/performance.md). Read by the OpenMP runtime when torch is first imported, so it only applies when lctk
# is imported first (as the `lctk` command does); a value set by the user wins. When torch came first, training
# says so once (`lctk.loop.warn_thread_policy`): no torch API can change the policy afterwards.
#: True when torch was imported before lctk with no wait policy set: its OpenMP threads spin.
SPINNING_THREADS = "torch" in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

#: Version of the on-disk layout of run folders, latent stores and constraints. A run written with another
#: format version is refused with a clear message instead of being misread.
FORMAT_VERSION = 1

from lctk.util.errors import LctkError  # noqa: E402
from lctk.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "FORMAT_VERSION", "LctkError", "hookimpl"]
