"""What the runner's serving loop needs from an engine: llama.cpp (`engine.py`) or the fake."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from trio_ollama.runner.protocol import Completion, Embed, Load, Message, Ready


class InvalidRequest(ValueError):
    """A request the engine refuses as given (a token id outside the vocabulary, say): the
    runner answers it with a client error and carries on."""


def check_tokens(tokens: Sequence[int], n_vocab: int) -> None:
    """Token ids from a client go to llama.cpp only if the vocabulary has them: an id outside it
    makes llama.cpp read out of bounds and the runner die."""
    for token in tokens:
        if not 0 <= token < n_vocab:
            raise InvalidRequest(f"invalid token id {token}: the vocabulary has {n_vocab}")


class EngineCrashed(Exception):
    """An in-process engine's way of dying like a process: the runner stops without a word."""


class Engine(Protocol):
    """What `serve_runner` needs from an engine (llama.cpp or the fake)."""

    async def load(self, params: Load) -> Ready: ...
    async def step(self) -> list[Message]: ...
    def submit(self, request: Completion) -> None: ...
    def submit_embed(self, request: Embed) -> None: ...
    def cancel(self, request_id: int) -> None: ...
    def set_threads(self, n_threads: int) -> None: ...
    def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...
    def detokenize(self, tokens: list[int]) -> str: ...
    def close(self) -> None: ...

    @property
    def has_work(self) -> bool: ...
