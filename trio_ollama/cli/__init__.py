"""The command line: Ollama's verbs, each a client of the HTTP API (`main` is the entry point)."""

from trio_ollama.cli.main import main

__all__ = ["main"]
