"""The ``lctk`` command line: a thin layer of click over the Python API.

Every user error ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import os

import click

from lctk import __version__
from lctk.util.errors import LctkError, one_line


#: Commands that may run under torchrun, one process per rank (see docs/distributed.md).
MULTI_PROCESS = {"train-vae", "encode"}


class LctkGroup(click.Group):
    """The command group: adds plugin commands on first use and turns LctkError into one line + exit code."""

    _plugins_added = False

    def _ensure_plugin_commands(self) -> None:
        if LctkGroup._plugins_added:
            return
        LctkGroup._plugins_added = True
        from lctk.plugins import PluginInfo, get_manager

        manager = get_manager()
        before = set(self.commands)

        def record(plugin: str) -> None:
            added = sorted(set(self.commands) - before)
            before.update(added)
            if added:
                manager.infos.setdefault(plugin, PluginInfo(plugin, "")).provides["commands"] = added

        manager.call("register_commands", lambda plugin: None, after=record, cli=self)

    def list_commands(self, ctx):
        self._ensure_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._ensure_plugin_commands()
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        """Find the subcommand; under torchrun only commands that train with several processes may run."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and command.name not in MULTI_PROCESS:
            error = LctkError(f"`lctk {command.name}` runs in one process; start it without torchrun "
                              f"(only {' and '.join(sorted(MULTI_PROCESS))} use several)")
            error.quiet = os.environ.get("RANK", "0") != "0"  # rank 0 says it once
            raise error
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LctkError as e:
            if not getattr(e, "quiet", False):  # under torchrun, an error all ranks share is printed by rank 0
                click.echo(f"error: {one_line(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)
        except Exception as e:  # a full disk wherever it struck (a folder made, a lock taken): still one line
            from lctk.util.io import disk_full  # (here: `lctk plugins` imports no torch)

            if not disk_full(e):
                raise
            where = f" while writing {e.filename}" if getattr(e, "filename", None) else ""
            click.echo(f"error: disk full{where}; nothing finished was changed, free space and run the command "
                       "again", err=True)
            ctx.exit(LctkError.exit_code)


@click.group(cls=LctkGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="lctk")
def cli():
    """lctk: make an unconditional generative model generate conditionally, without retraining it.

    \b
    lctk train-vae --backbone conv --data fashion-mnist --out RUN
    lctk encode RUN
    lctk add-constraint RUN --attr sandal
    lctk sample RUN --attr sandal --out sandals.png
    lctk evaluate RUN
    """


def _add_builtin_commands() -> None:
    from lctk.cli import constraints, import_cmd, plugins_cmd, serve_cmd, train

    for module in (train, import_cmd, constraints, plugins_cmd, serve_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_add_builtin_commands()


def reset_plugin_commands() -> None:
    """Drop plugin-added commands so the next use re-adds them (tests that change the installed plugins)."""
    for name in list(cli.commands):
        del cli.commands[name]
    _add_builtin_commands()
    LctkGroup._plugins_added = False


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lctk`` command."""
    cli.main(args=argv, prog_name="lctk")
