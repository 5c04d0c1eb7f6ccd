"""`trio-ollama`: the command line. Verbs other than `serve` and `setup` are HTTP clients."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import trio

from trio_ollama.bench import cli as bench_cli
from trio_ollama.cli import commands
from trio_ollama.cli.answer import RunOptions
from trio_ollama.cli.client import Client, CLIError
from trio_ollama.cli.create import create
from trio_ollama.cli.formatting import table
from trio_ollama.cli.run import parse_format, parse_keep_alive, run
from trio_ollama.config import ConfigError, Settings, log_settings
from trio_ollama.config_file import CONFIG_VARIABLE
from trio_ollama.fleet import cli as fleet_cli
from trio_ollama.gocompat.format import human_bytes, human_time
from trio_ollama.logs import configure
from trio_ollama.sim import cli as sim_cli
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.store.errors import StoreError
from trio_ollama.version import OLLAMA_API_VERSION


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

    log = logging.getLogger("trio_ollama")

    async def main() -> None:
        # The first SIGINT or SIGTERM stops accepting and lets requests in flight finish (the
        # grace period); a second one stops everything at once, quietly: the receiver stays
        # installed for the whole run, so Python's KeyboardInterrupt never fires.
        stop = trio.Event()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async with trio.open_nursery() as nursery:

                async def signals() -> None:
                    async for signum in received:
                        if stop.is_set():
                            log.info("received %s again, stopping now", signum)
                            nursery.cancel_scope.cancel()
                            return
                        log.info("received %s, shutting down", signum)
                        stop.set()

                nursery.start_soon(signals)
                await serve(settings, shutdown_trigger=stop.wait)
                nursery.cancel_scope.cancel()

    trio.run(main)
    return 0


# ----- client verbs: each takes the parsed arguments and a client, and returns the exit status


def _run(args: argparse.Namespace, client: Client) -> int:
    opts = RunOptions(
        model=args.model,
        format=parse_format(args.format),
        keep_alive=parse_keep_alive(args.keepalive),
        verbose=args.verbose,
        wordwrap=not args.nowordwrap,
    )
    return run(client, opts, args.prompt)


def _create(args: argparse.Namespace, client: Client) -> int:
    create(client, args.model, args.file, args.quantize or "")
    return 0


def _list(args: argparse.Namespace, client: Client) -> int:
    print(commands.list_models(client, args.prefix), end="")
    return 0


def _ps(args: argparse.Namespace, client: Client) -> int:
    print(commands.running_models(client, args.prefix), end="")
    return 0


def _show(args: argparse.Namespace, client: Client) -> int:
    sections = {name: getattr(args, name) for name in commands.SECTION_FLAGS}
    print(commands.show(client, args.model, sections, args.verbose), end="")
    return 0


def _stop(args: argparse.Namespace, client: Client) -> int:
    commands.stop(client, args.model)
    return 0


def _rm(args: argparse.Namespace, client: Client) -> int:
    for line in commands.remove(client, args.models):
        print(line)
    return 0


def _cp(args: argparse.Namespace, client: Client) -> int:
    print(commands.copy(client, args.source, args.destination))
    return 0


def _pull(args: argparse.Namespace, client: Client) -> int:
    commands.transfer(client, "pull", args.model, args.insecure)
    return 0


def _push(args: argparse.Namespace, client: Client) -> int:
    commands.transfer(client, "push", args.model, args.insecure)
    return 0


def _version(_args: argparse.Namespace, client: Client) -> int:
    """Ollama's `ollama -v`: the server's version, and this client's when it differs (both
    the Ollama API version, `version.OLLAMA_API_VERSION`; the package's own is the server's
    `Trio-Ollama-Version` header)."""
    server = ""
    try:
        answer = client.json("GET", "/api/version")
        server = str(answer.get("version") or "") if isinstance(answer, dict) else ""
    except CLIError:
        print("Warning: could not connect to a running Ollama instance")
    if server:
        print(f"ollama version is {server}")
    if server != OLLAMA_API_VERSION:
        print(f"Warning: client version is {OLLAMA_API_VERSION}")
    return 0


Verb = Callable[[argparse.Namespace, Client], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trio-ollama", description=__doc__)
    parser.add_argument(
        "-v", "--version", action="store_true", help="show the server's and this client's version"
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.add_parser("setup", help="import the default model (smollm2:135m) into the store")
    serve = verbs.add_parser("serve", aliases=["start"], help="start the server")
    serve.add_argument(
        "--config",
        metavar="FILE",
        help=f"scheduling policies, a TOML file (docs/policies.md); default ${CONFIG_VARIABLE}",
    )

    def verb(name: str, handler: Verb, about: str, aliases: tuple[str, ...] = ()) -> Any:
        sub = verbs.add_parser(name, help=about, aliases=list(aliases))
        sub.set_defaults(handler=handler)
        return sub

    run = verb("run", _run, "run a model: one answer, or an interactive chat")
    run.add_argument("model")
    run.add_argument("prompt", nargs="*", help="the prompt; stdin, if piped, comes first")
    run.add_argument("--keepalive", metavar="DURATION", help="how long the model stays loaded")
    run.add_argument("--verbose", action="store_true", help="show timings for the response")
    run.add_argument("--format", help="response format (json, or a JSON schema)")
    run.add_argument(
        "--nowordwrap",
        action="store_true",
        help="don't wrap words to the next line automatically",
    )
    run.add_argument("--insecure", action="store_true", help=argparse.SUPPRESS)

    create = verb("create", _create, "create a model from a Modelfile")
    create.add_argument("model")
    create.add_argument("-f", "--file", help="name of the Modelfile (default: Modelfile)")
    create.add_argument("-q", "--quantize", help="quantize the model to this level")

    show = verb("show", _show, "show information for a model")
    show.add_argument("model")
    for name in commands.SECTION_FLAGS:
        show.add_argument(f"--{name}", action="store_true", help=f"show the model's {name}")
    show.add_argument("-v", "--verbose", action="store_true", help="show detailed information")

    for name, handler, aliases, about in (
        ("list", _list, ("ls",), "list models"),
        ("ps", _ps, (), "list running models"),
    ):
        sub = verb(name, handler, about, aliases)
        sub.add_argument("prefix", nargs="?", help="only models whose name starts with this")

    verb("stop", _stop, "stop a running model").add_argument("model")
    verb("rm", _rm, "remove models").add_argument("models", nargs="+", metavar="model")
    cp = verb("cp", _cp, "copy a model")
    cp.add_argument("source")
    cp.add_argument("destination")
    for name, handler, about in (
        ("pull", _pull, "pull a model from a registry"),
        ("push", _push, "push a model to a registry"),
    ):
        sub = verb(name, handler, about)
        sub.add_argument("model")
        sub.add_argument("--insecure", action="store_true", help="use an insecure registry")
    bench_cli.add_parser(verbs)
    sim_cli.add_parser(verbs)
    fleet_cli.add_parser(verbs)
    return parser


def _early_logging(client: bool) -> None:
    """Logging set up from the environment before the settings are read, so that what the
    settings warn about is printed with its fields.

    A client's stderr is for the user: the server's default INFO (and httpx's per-request lines)
    would drown the answer; OLLAMA_DEBUG still turns diagnostics on.
    """
    level, log_format = log_settings(os.environ)
    if client:
        level = level if level < logging.INFO else logging.WARNING
        configure(level, log_format, text="%(levelname)s %(name)s: %(message)s")
    else:
        configure(level, log_format, text="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse ends `run`'s prompt at the first option; words after it belong to it too.
        if args.verb != "run" or any(word.startswith("-") for word in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.prompt = [*args.prompt, *extra]
    handler: Verb | None = getattr(args, "handler", None)
    if args.version and args.verb is None:
        handler = _version
    _early_logging(client=handler is not None or args.verb in ("bench", "simulate"))
    if args.verb == "bench":
        return bench_cli.main(args)
    if args.verb == "simulate":
        return sim_cli.main(args)
    if args.verb == "fleet":
        return fleet_cli.main(args)
    env = dict(os.environ)
    if args.verb not in ("serve", "start"):
        env.pop(CONFIG_VARIABLE, None)  # the server's file: a client never needs to read it
    elif args.config:
        env[CONFIG_VARIABLE] = args.config
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    if handler is not None:
        try:
            with Client(settings.host.url) as client:
                return handler(args, client)
        except CLIError as exc:
            print(exc.line(), file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python's final flush of
            # stdout from raising again at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
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
