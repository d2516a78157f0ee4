"""The one table of plugin kinds: it drives the hook specifications and the registries; plugins registered as
``"module:attribute"`` references are listed without importing them; a plugin that fails in one hook loses
everything it registered; a name two plugins register is shown as overridden; `lctk.plugin_api` exports
what docs/plugins.md says a plugin author needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lctk import hookimpl, hookspecs, plugin_api
from lctk.hookspecs import KINDS
from lctk.plugins import Registries
from tests.plugin_packages import REPO


def test_every_kind_has_a_hook_spec_and_a_registry():
    reg = Registries()
    for kind in KINDS:
        spec = getattr(hookspecs, kind.hook)
        assert hasattr(spec, "lctk_spec") and kind.key in spec.__doc__
        assert getattr(reg, kind.key) == {}


def test_unknown_names_name_what_is_available(fresh_plugins):
    reg = fresh_plugins.get_registries()
    with pytest.raises(Exception, match=r"unknown backbone 'nope'; available: .*conv.*\(see `lctk plugins`\)"):
        reg.backbone("nope")
    with pytest.raises(Exception, match=r"unknown writer for modality 'nope'; .*install the plugin for it"):
        reg.writer("nope")


def test_plugins_lists_without_importing_model_code(tmp_path):
    code = ("import sys; from lctk.cli.plugins_cmd import detail_rows, plugin_rows; rows = plugin_rows(); "
            "details = detail_rows(); print('torch' in sys.modules, len(rows), len(details))")
    env = {**os.environ, "LCTK_PLUGINS": "lctk-conv,lctk-lstm"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    imported, plugins, names = out.stdout.split()
    assert imported == "False" and int(plugins) == 3 and int(names) > 8  # lctk's own, conv, lstm


def test_references_resolve_on_lookup(fresh_plugins):
    from lctk_conv.model import ConvVAE
    from lctk_conv.writer import PNGWriter

    reg = fresh_plugins.get_registries()
    assert reg.backbones["conv"].ref == "lctk_conv.model:ConvVAE" and reg.backbone("conv") is ConvVAE
    assert isinstance(reg.writer("image"), PNGWriter)  # a writer class reference is instantiated


def test_a_broken_reference_is_one_line(fresh_plugins):
    class Dangling:
        @hookimpl
        def register_backbones(self, register):
            register("dangling", "no_such_module_anywhere:Model", help="points nowhere")

    reg = fresh_plugins.add_plugin(Dangling(), "dangling-plugin")
    with pytest.raises(Exception, match=r"cannot be loaded \(ModuleNotFoundError: .*\); reinstall or fix"):
        reg.backbone("dangling")


def test_dataset_options_and_attributes_are_listed(run_cli):
    rows = json.loads(run_cli("plugins", "--details", "--json").stdout)
    idx = next(r for r in rows if r["kind"] == "datasets" and r["name"] == "idx")
    assert "classes" in idx["options"] and "0, 1" in idx["attributes"] and idx["help"]
    rule = next(r for r in rows if r["kind"] == "rules" and r["name"] == "key")
    assert rule["modality"] == "melody" and "key=C" in rule["help"]
    text = run_cli("plugins", "--details").stdout
    assert "--data-option classes=" in text and "ankle-boot" in text


def test_listed_attributes_are_the_datasets_own():
    from lctk_conv.mnist_like import FASHION_CLASSES
    from lctk_conv.pixels import PIXEL_ATTRIBUTES
    from lctk_conv.plugin import FASHION_CLASSES as listed
    from lctk_conv.plugin import PIXEL
    from lctk_lstm.features import CONTINUOUS, attribute_names
    from lctk_lstm.plugin import BINARY
    from lctk_lstm.plugin import CONTINUOUS as listed_continuous

    assert listed.split(", ") == FASHION_CLASSES and PIXEL.split(": ")[1].split(", ") == list(PIXEL_ATTRIBUTES)
    assert BINARY.split(", ") == attribute_names() and listed_continuous.split(", ") == list(CONTINUOUS)


class Provider:
    """Registers in two hooks; with ``fail``, its second hook raises."""

    def __init__(self, backbone: str, fail: bool = False):
        self.backbone, self.fail = backbone, fail

    @hookimpl
    def register_backbones(self, register):
        register(self.backbone, "lctk_conv.model:ConvVAE", help="a conv VAE under another name")

    @hookimpl
    def register_writers(self, register):
        if self.fail:
            raise RuntimeError("writers broken on purpose")
        register("provider-" + self.backbone, "lctk_conv.writer:PNGWriter")


def test_a_plugin_failing_in_a_later_hook_loses_everything(fresh_plugins, capsys):
    reg = fresh_plugins.add_plugin(Provider("half-broken", fail=True), "half-broken-plugin")
    assert "half-broken" not in reg.backbones and "provider-half-broken" not in reg.writers
    assert reg.plugins["half-broken-plugin"].error.startswith("register_writers: RuntimeError")
    assert reg.plugins["half-broken-plugin"].provides == {}
    assert "conv" in reg.backbones  # the others keep working
    assert capsys.readouterr().err.count("warning: plugin half-broken-plugin failed") == 1


def test_a_name_two_plugins_register_is_shown_as_overridden(fresh_plugins, run_cli):
    fresh_plugins.add_plugin(Provider("twin"), "first-plugin")
    reg = fresh_plugins.add_plugin(Provider("twin"), "second-plugin")
    winner = reg.backbones["twin"]
    assert winner.also == [("first-plugin" if winner.plugin == "second-plugin" else "second-plugin")]
    table = run_cli("plugins").stdout
    assert f"backbone 'twin' is overridden by {winner.plugin}" in " ".join(table.split())


def test_plugin_api_exports_what_the_docs_name():
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None
    from lctk.plugins import DataRequest  # the old import keeps working

    assert DataRequest is plugin_api.DataRequest
    assert "from lctk.plugin_api import" in docs


def test_lctk_own_plugins_import_only_the_plugin_api():
    """lctk's plugin distributions depend on `lctk.plugin_api` (and `lctk.hookimpl`) only, as docs/plugins.md says."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "plugins"
    allowed = re.compile(r"^\s*(from lctk\.plugin_api import|from lctk import hookimpl\b)")
    offenders = [f"{path.relative_to(root)}:{n}: {line.strip()}"
                 for path in sorted(root.glob("*/lctk_*/**/*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.match(r"^\s*(from lctk[. ]|import lctk\b)", line) and not allowed.match(line)]
    assert not offenders, "plugins reach past lctk.plugin_api:\n" + "\n".join(offenders)
