"""What a request holds of a loaded runner: `RunnerConnection`, and the stream of one completion.

The scheduler hands these out (`Lease.runner`) and the HTTP layer speaks to them; neither needs
to know what answers. `RunnerClient` answers over a runner's socket (a subprocess, or the fake
engine served in-process); the simulator's `DirectClient` (`trio_ollama.testing.direct`) answers
in this process without frames. Both satisfy these protocols structurally; mypy checks each
where it is handed to the scheduler as a runner factory's result.

The runner's own side has its protocol too: `trio_ollama.runner.interface.Engine`, what the
serving loop needs from llama.cpp or the fake engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import trio

from trio_ollama.runner.protocol import Completion, Done, Embedding, Piece, Ready


class CompletionEvents(Protocol):
    """One completion's `Piece`s, then its `Done`; `RunnerError` if the runner fails first.

    Iterate it once. A reader that stops early closes it (`contextlib.aclosing`), so that no
    generator is left for the garbage collector to finalize."""

    @property
    def done(self) -> Done | None:
        """The `Done`, once it has been read."""

    def __aiter__(self) -> AsyncIterator[Piece | Done]: ...

    async def aclose(self) -> None: ...


class RunnerConnection(Protocol):
    """A loaded runner, shared by the requests that hold one of its slots.

    Every method raises `RunnerError` when the runner refuses the request (`invalid` set when
    the request itself is at fault), and `RunnerGoneError` once the runner has ended."""

    @property
    def pid(self) -> int | None:
        """The runner's process id; None when it runs in this process."""

    @property
    def ready(self) -> Ready | None:
        """What the runner reported once its model was loaded: context, slots, memory."""

    @property
    def closed(self) -> trio.Event:
        """Set when the runner has ended (crashed, killed, or unloaded)."""

    @property
    def dead(self) -> bool:
        """`closed.is_set()`."""

    def completion(self, request: Completion) -> AbstractAsyncContextManager[CompletionEvents]:
        """`async with runner.completion(request) as events: async for event in events: ...`.
        Leaving the block before `Done` cancels the completion at the runner's next step."""

    async def embed(self, text: str, truncate: bool = True) -> Embedding: ...

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...

    async def count_tokens(self, text: str, add_special: bool = True) -> int:
        """`len(await tokenize(text))`, with only the count sent back."""

    async def detokenize(self, tokens: list[int]) -> str: ...

    async def set_threads(self, n_threads: int) -> None:
        """Decode with `n_threads` threads from the next step (the scheduler's thread budget)."""
