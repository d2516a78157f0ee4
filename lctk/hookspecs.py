"""Hook specifications: what a plugin can add to lctk, as ONE table of plugin kinds.

A plugin is a module (or object) with functions marked ``@lctk.hookimpl``, exposed through an entry point
in the ``lctk`` group of its distribution::

    [options.entry_points]
    lctk =
        mlp = lctk_mlp.plugin

Every ``register_*`` hook receives a ``register`` callable and passes it objects, instead of returning lists.
`KINDS` drives everything else: the hook specifications below, the registries of `lctk.plugins`, the
``provides`` of `lctk plugins`, and the test that every hook is documented in docs/plugins.md and tested.
Adding a kind of plugin is adding one row to `KINDS`.
"""

from __future__ import annotations

import dataclasses
import types

import pluggy

hookspec = pluggy.HookspecMarker("lctk")
hookimpl = pluggy.HookimplMarker("lctk")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of thing plugins register.

    ``key``: the registry table (``Registries.backbones``) and the key in `lctk plugins`; ``noun``: how errors
    name one (``backbone``, ``writer for modality``); ``hook``: the hook's name; ``call``: how the hook's
    ``register`` is called (for the docs); ``doc``: what the registered object is. ``instantiate``: a
    ``"module:Class"`` reference is constructed without arguments when resolved (kinds registered as
    instances). ``details``: extra keyword arguments ``register`` accepts, shown by ``lctk plugins --details``.
    ``argument``: what the hook receives (``register``, or ``cli`` for commands); ``remedy``: the end of an
    unknown-name error, when the default does not fit.
    """

    key: str
    noun: str
    hook: str
    call: str
    doc: str
    instantiate: bool = False
    details: tuple[str, ...] = ()
    argument: str = "register"
    remedy: str = ""

    @property
    def hint(self) -> str:
        """The remedy an unknown-name error ends with."""
        if self.remedy:
            return self.remedy
        return " (see `lctk plugins`)" if " " not in self.noun else "; install the plugin for it"


KINDS: tuple[Kind, ...] = (
    Kind("backbones", "backbone", "register_backbones", "register(name, backbone_class, *, help='')",
         "a subclass of `lctk.plugin_api.Backbone`"),
    Kind("datasets", "dataset", "register_datasets",
         "register(name, loader, *, modality=..., help='', options={}, attributes='')",
         "loader(request: DataRequest) -> Dataset", details=("options", "attributes")),
    Kind("writers", "writer for modality", "register_writers", "register(modality, writer, *, help='')",
         "a `lctk.plugin_api.Writer` instance for that modality", instantiate=True),
    Kind("evaluators", "evaluator for modality", "register_evaluators",
         "register(modality, evaluator_class, *, help='')", "a subclass of `lctk.plugin_api.Evaluator`"),
    Kind("labelers", "labeler for modality", "register_labelers", "register(modality, labeler_class, *, help='')",
         "a subclass of `lctk.plugin_api.Labeler` that labels decoded outputs of generator-only backbones (a model "
         "apart from that modality's evaluator)"),
    Kind("rules", "rule", "register_rules", "register(name, parser, *, modality=..., help='')",
         "parser(spec) -> `lctk.plugin_api.Rule`"),
    Kind("importers", "model format", "register_importers", "register(name, importer, *, help='')",
         "an `lctk.plugin_api.Importer` instance (``detect(path)``, ``load(path, data_spec)``) for models trained "
         "elsewhere", instantiate=True, remedy=" (see `lctk plugins`; install the importer plugin)"),
    Kind("constraint_methods", "constraint method", "register_constraint_methods",
         "register(name, method_class, *, help='')",
         "a subclass of `lctk.plugin_api.Constraint` that learns constraints from latents and samples with them "
         "(lctk's own: `actor`, `diffusion`)", remedy=" (see `lctk plugins`; install the plugin that provides it)"),
    Kind("commands", "command", "register_commands", "cli.add_command(command)",
         "click commands added to the `lctk` command group", argument="cli"),
)

#: The kinds by registry key.
BY_KEY = {kind.key: kind for kind in KINDS}


_TEMPLATES = {"register": lambda register: None, "cli": lambda cli: None}


def _spec(kind: Kind):
    """The hook specification of ``kind``: a function of one argument named ``kind.argument``."""
    template = _TEMPLATES[kind.argument]  # pluggy checks implementations against the argument's name
    fn = types.FunctionType(template.__code__, globals(), kind.hook)
    fn.__doc__ = f"Register {kind.key}: ``{kind.call}``, {kind.doc}."
    return hookspec(fn)


for _kind in KINDS:
    globals()[_kind.hook] = _spec(_kind)
del _kind
