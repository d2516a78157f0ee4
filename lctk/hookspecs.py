"""Hook specifications: what a plugin can add to lctk.

A plugin is a module (or object) with functions marked ``@lctk.hookimpl``, exposed through an entry point
in the ``lctk`` group of its distribution::

    [options.entry_points]
    lctk =
        mlp = lctk_mlp.plugin

Every ``register_*`` hook receives a ``register`` callable and passes it objects, instead of returning lists.
"""

import pluggy

hookspec = pluggy.HookspecMarker("lctk")
hookimpl = pluggy.HookimplMarker("lctk")


@hookspec
def register_backbones(register):
    """Register backbones: ``register(name, backbone_class)``, a subclass of `lctk.interfaces.Backbone`."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, loader, modality=..., help=...)``, loader(request) -> Dataset."""


@hookspec
def register_writers(register):
    """Register output writers: ``register(modality, writer)``, a `lctk.interfaces.Writer` for that modality."""


@hookspec
def register_evaluators(register):
    """Register evaluators: ``register(modality, evaluator_class)``, a `lctk.interfaces.Evaluator` subclass."""


@hookspec
def register_labelers(register):
    """Register labelers: ``register(modality, labeler_class)``, a `lctk.interfaces.Labeler` subclass that labels
    decoded outputs of generator-only backbones (a model apart from that modality's evaluator)."""


@hookspec
def register_rules(register):
    """Register zero-shot rules: ``register(name, parser, modality=..., help=...)``, parser(spec) -> Rule."""


@hookspec
def register_importers(register):
    """Register importers of models trained elsewhere: ``register(name, importer, help=...)``, an
    `lctk.interfaces.Importer` (``detect(path) -> bool``, ``load(path, data_spec) -> Backbone``)."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``lctk`` command group ``cli``."""
