"""Everything a plugin author needs, importable from one module::

    from lctk.plugin_api import Backbone, BackboneConfig, DataRequest, InMemoryDataset, hookimpl, subsample

Keep the entry-point module itself light (``from lctk import hookimpl``; register ``"module:attribute"``
references), so that `lctk plugins` and ``--help`` import no model code; import this module from the modules
that implement your backbone, dataset, writer, evaluator or rules. See docs/plugins.md.
"""

from lctk.datasets import attribute_name, cache_root, names_from_option, one_hot_attributes, subsample
from lctk.util.errors import LctkError
from lctk.hookspecs import KINDS, hookimpl
from lctk.interfaces import (Backbone, BackboneConfig, DataRequest, Dataset, Decoder, Encoder, Evaluator, Importer,
                             InMemoryDataset, Labeler, Rule, Writer, gaussian_log_likelihood)
from lctk.util.io import atomic_path, write_bytes
from lctk.util.progress import Progress

__all__ = [
    "hookimpl", "KINDS", "LctkError",
    # contracts
    "Backbone", "BackboneConfig", "Encoder", "Decoder", "Dataset", "InMemoryDataset", "DataRequest", "Writer",
    "Evaluator", "Rule", "Importer", "Labeler", "gaussian_log_likelihood",
    # helpers for datasets
    "subsample", "attribute_name", "one_hot_attributes", "names_from_option", "cache_root", "Progress",
    # helpers for writers
    "atomic_path", "write_bytes",
]
