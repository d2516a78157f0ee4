"""``lctk serve``: the explorer, a local web page over one run folder."""

from __future__ import annotations

from pathlib import Path

import click

from lctk.util.errors import LctkError
from lctk.util.progress import console

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("serve")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback makes the run reachable from other machines.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
def serve_cmd(run, host, port):
    """Explore RUN in a browser: sample with attributes and rules, edit examples, listen, inspect metrics.

    The server only reads RUN; it never reads or writes a path a request names."""
    try:
        import uvicorn

        from lctk.serve.app import create_app
    except ImportError as e:
        raise LctkError(f"`lctk serve` needs the web packages ({e.name} is missing); "
                        "install them with `pip install 'lctk[serve]'`") from None
    if host not in LOOPBACK:
        click.echo(f"warning: serving on {host}: anyone who can reach this machine can use the explorer", err=True)
    app = create_app(run)
    console.print(f"lctk explorer for {run}: http://{'[' + host + ']' if ':' in host else host}:{port}/ "
                  "(Ctrl+C stops it)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


COMMANDS = [serve_cmd]
