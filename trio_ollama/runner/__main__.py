"""`python -m trio_ollama.runner --fd N`: one model runner, talking over an inherited socket."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

import trio

from trio_ollama.config import log_settings
from trio_ollama.logs import configure
from trio_ollama.runner.interface import Engine
from trio_ollama.runner.server import serve_runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trio_ollama.runner")
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket")
    parser.add_argument("--engine", choices=("llama", "fake"), default="llama")
    parser.add_argument("--fake-config", default="{}", help="JSON for the fake engine")
    args = parser.parse_args(argv)
    level, log_format = log_settings(os.environ)
    configure(
        level,
        log_format,
        text=f"%(asctime)s %(levelname)s runner[{os.getpid()}] %(name)s: %(message)s",
        static={"runner_pid": os.getpid()},
    )
    engine: Engine
    if args.engine == "fake":
        from trio_ollama.runner.fake import FakeConfig, FakeEngine

        engine = FakeEngine(FakeConfig.from_json(json.loads(args.fake_config)))
    else:
        from trio_ollama.runner.engine import LlamaEngine

        engine = LlamaEngine()
    sock = socket.socket(fileno=args.fd)

    async def run() -> None:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        await serve_runner(stream, engine)

    trio.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
