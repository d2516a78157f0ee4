"""Everything a plugin author needs, importable from one module::

    from lctk.plugin_api import Backbone, BackboneConfig, DataRequest, InMemoryDataset, hookimpl, subsample

Keep the entry-point module itself light (``from lctk import hookimpl``; register ``"module:attribute"``
references), so that `lctk plugins` and ``--help`` import no model code; import this module from the modules
that implement your backbone, dataset, writer, evaluator or rules. See docs/plugins.md. lctk's own plugins
(plugins/lctk-conv, plugins/lctk-lstm, plugins/lctk-pythae, plugins/lctk-diffusers) import nothing else from lctk.
"""

from lctk.datasets import attribute_name, cache_root, names_from_option, one_hot_attributes, subsample
from lctk.hookspecs import KINDS, hookimpl
from lctk.interfaces import (Backbone, BackboneConfig, DataRequest, Dataset, Decoder, Encoder, Evaluator, Generator,
                             Importer, InMemoryDataset, Labeler, Rule, Writer, gaussian_log_likelihood)
from lctk.run import state_dict_problem
from lctk.util.config import Range, from_dict, to_dict
from lctk.util.errors import LctkError, describe
from lctk.util.io import atomic_path, load_json, load_tensors, save_json, save_tensors, write_bytes
from lctk.util.media import Media
from lctk.util.metrics import feature_stats, frechet_distance
from lctk.util.progress import Progress, console, silent
from lctk.interfaces import Constraint
from lctk.engine.method import TargetColumns, TrainingData, describe as describe_constraint, read_description
from lctk.engine.targets import Target

__all__ = [
    "hookimpl", "KINDS", "LctkError", "describe",
    # contracts
    "Backbone", "BackboneConfig", "Encoder", "Decoder", "Generator", "Dataset", "InMemoryDataset", "DataRequest",
    "Writer", "Media", "Evaluator", "Rule", "Importer", "Labeler", "gaussian_log_likelihood",
    # configs: dataclasses to and from JSON, with ranges checked
    "Range", "from_dict", "to_dict",
    # helpers for datasets
    "subsample", "attribute_name", "one_hot_attributes", "names_from_option", "cache_root", "Progress", "console",
    "silent",
    # files: atomic writes, safetensors and JSON (never pickles), weights checked against a model
    "atomic_path", "write_bytes", "load_json", "save_json", "load_tensors", "save_tensors", "state_dict_problem",
    # measures for evaluators
    "feature_stats", "frechet_distance",
    # constraint methods
    "Constraint", "TrainingData", "Target", "TargetColumns", "describe_constraint", "read_description",
]
