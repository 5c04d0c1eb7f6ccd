"""Model runners: one subprocess per loaded model, spoken to over a socket.

`open_runner(load)` starts one and gives a `RunnerClient` once the model is loaded; requests are
the `protocol` messages (`Completion` with its `Sampling`, streaming `Piece`s then a `Done`).
The child side (`server`, `engine`) runs in `python -m trio_ollama.runner`.
"""

from trio_ollama.runner.client import (
    CompletionStream,
    LoadError,
    RunnerClient,
    RunnerError,
    RunnerGoneError,
)
from trio_ollama.runner.process import RunnerProcess, open_runner
from trio_ollama.runner.protocol import Completion, Done, Load, Piece, Ready, Sampling

__all__ = [
    "Completion",
    "CompletionStream",
    "Done",
    "Load",
    "LoadError",
    "Piece",
    "Ready",
    "RunnerClient",
    "RunnerError",
    "RunnerGoneError",
    "RunnerProcess",
    "Sampling",
    "open_runner",
]
