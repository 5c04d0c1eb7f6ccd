"""`trio-ollama`: the command line. Verbs other than `serve` and `setup` are HTTP clients."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from functools import partial

import trio

from trio_ollama import __version__
from trio_ollama.cli.formatting import human_bytes, human_time, table
from trio_ollama.config import ConfigError, Settings
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.store.errors import StoreError


def _setup(settings: Settings) -> int:
    """Put the default model in the store (the one-command set-up's last step)."""
    store = Store(settings.models_dir)
    name = ensure_default_model(store, progress=lambda status: print(status, file=sys.stderr))
    print(f"{name.display_shortest} is ready in {settings.models_dir}")
    rows = [
        [e.name.display_shortest, e.digest[:12], human_bytes(e.size), human_time(e.modified_at)]
        for e in store.list()
    ]
    print(table(["NAME", "ID", "SIZE", "MODIFIED"], rows), end="")
    return 0


def _serve(settings: Settings) -> int:
    from trio_ollama.api.server import serve

    async def until_signal() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                logging.getLogger("trio_ollama").info("received %s, shutting down", signum)
                return

    trio.run(partial(serve, settings, shutdown_trigger=until_signal))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trio-ollama", description=__doc__)
    parser.add_argument("--version", action="version", version=f"trio-ollama {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.add_parser("setup", help="import the default model (smollm2:135m) into the store")
    verbs.add_parser("serve", aliases=["start"], help="start the server")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.verb == "setup":
            return _setup(settings)
        if args.verb in ("serve", "start"):
            return _serve(settings)
    except StoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    parser.print_help()
    return 0
