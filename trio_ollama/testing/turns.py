"""Turns: what happens at one virtual moment, one thing at a time, in an order fixed by keys.

In virtual time many things happen at the same moment: a batch's streams end together, their
clients send their next requests, a freed slot is taken, a runner's next step admits whatever
arrived. Trio runs the tasks that are ready together in an order it draws at random (on purpose,
so that code does not come to rely on one), so a simulation whose actors simply race would give
another result each run. Trio offers no public way to fix that draw, and needs none here: each
actor takes a turn just before it acts, and the turns of a moment go by key, each once the last
one's consequences have settled. What Trio then orders at random is only what commutes.
"""

from __future__ import annotations

import heapq
import itertools

import attrs
import trio
import trio.testing

# A turn's key: compared as tuples, lowest first (a kind, then a number within it).
TurnKey = tuple[int, int]
# The kinds, in the order they go at one moment: requests give their slots back, then requests
# ask for slots, each kind by request number.
LEAVE, ASK = 0, 1


@attrs.define(eq=False)
class _Turn:
    go: trio.Event = attrs.field(factory=trio.Event)
    left: bool = False  # cancelled while it waited


class Turns:
    """`take(key)` waits for the caller's turn; `run` hands the turns out.

    `run` waits until every task is blocked (`trio.testing.wait_all_tasks_blocked`, which with
    a `MockClock` comes before the clock jumps): by then everyone acting at this moment is
    waiting for a turn, and the last turn's consequences have settled. Then the lowest key goes.
    A turn ends when its taker next blocks, and time moves on only when no turn is left."""

    def __init__(self) -> None:
        self._waiting: list[tuple[TurnKey, int, _Turn]] = []
        self._arrived = trio.Event()
        self._seq = itertools.count()

    async def take(self, key: TurnKey) -> None:
        turn = _Turn()
        heapq.heappush(self._waiting, (key, next(self._seq), turn))
        self._arrived.set()
        try:
            await turn.go.wait()
        except BaseException:
            turn.left = True
            raise

    async def run(self) -> None:
        """Hand out turns until cancelled."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            while self._waiting:
                await trio.testing.wait_all_tasks_blocked()
                while self._waiting:
                    turn = heapq.heappop(self._waiting)[2]
                    if not turn.left:
                        turn.go.set()
                        break
