"""Ollama's own test cases for the family parsers and renderers, and what their tests share.

`tests/data/ollama-cases/*.json` are the tables of Ollama's `model/parsers/*_test.go` and
`model/renderers/*_test.go` (commit fb30760996871fa9460115c753afd2c60d4ab0f7), translated into
data: one key a Go test function, its cases as written there, with Go's values in the API's
JSON shape (a tool call is `{"function": {"name", "arguments", "index"}}`, a message
`{"role", "content", ...}`, a `think` value `{"__think__": value}`).
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from trio_ollama.parsers import ParseError
from trio_ollama.templates import Message, ToolCall

CASES = Path(__file__).parent / "data" / "ollama-cases"
SPLITS = 300


@cache
def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CASES / f"{name}.json").read_text())
    return data


def cases(name: str, test: str) -> list[dict[str, Any]]:
    """The cases of Ollama's `test` function in `name`.json, each with its name."""
    return list(_load(name)[test])


def ids(table: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(case.get("name", i)) for i, case in enumerate(table)]


def think_of(value: Any) -> bool | str | None:
    """A Go `*api.ThinkValue` from the tables: nil, or `{"__think__": true}`."""
    return None if value is None else value["__think__"]


def message(data: Mapping[str, Any] | None) -> Message | None:
    return None if data is None else Message.from_json(data)


def messages(data: Sequence[Mapping[str, Any]] | None) -> list[Message]:
    return [Message.from_json(m) for m in data or ()]


def call_json(call: ToolCall) -> dict[str, Any]:
    fn = call.function
    return {"name": fn.name, "arguments": fn.arguments.go_json(), "index": fn.index}


def call(name: str, index: int = 0, /, **arguments: Any) -> dict[str, Any]:
    """A call in `call_json`'s shape."""
    return {"name": name, "arguments": arguments, "index": index}


def expected_calls(data: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Go's expected calls (missing fields are zero values) in `call_json`'s shape."""
    out = []
    for call in data or ():
        fn = call["function"]
        out.append({"name": fn.get("name", ""), "arguments": fn.get("arguments") or {},
                    "index": fn.get("index", 0)})  # fmt: skip
    return out


def feed(parser: Any, pieces: Sequence[str]) -> tuple[str, str, list[dict[str, Any]]]:
    """Content, thinking and calls from `pieces`, the last with `done`."""
    content, thinking, calls = [], [], []
    for i, piece in enumerate(pieces):
        c, t, tc = parser.add(piece, i == len(pieces) - 1)
        content.append(c)
        thinking.append(t)
        calls += [call_json(x) for x in tc]
    return "".join(content), "".join(thinking), calls


def random_pieces(text: str, rng: random.Random) -> list[str]:
    """`text` cut at random places (one to a dozen cuts, some pieces one character)."""
    if len(text) < 2:
        return [text, ""]
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12))))
    if rng.random() < 0.2:  # now and then: a character a piece
        cuts = list(range(1, len(text)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)] + [""]


def same_in_any_pieces(make: Callable[[], Any], text: str, seed: str) -> None:
    """`SPLITS` random cuts of `text` give what the whole gives (or the same ParseError)."""

    def run(pieces: Sequence[str]) -> Any:
        try:
            return feed(make(), pieces)
        except ParseError as exc:
            return ("error", str(exc))

    whole = run([text])
    rng = random.Random(seed)
    for _ in range(SPLITS):
        pieces = random_pieces(text, rng)
        assert run(pieces) == whole, pieces


def hostile_outputs() -> dict[str, str]:
    """About 1 MB each of what breaks a careless parser: tags never closed, tags opened inside
    each other, a call with a huge argument, half-tags, long runs of blanks."""
    mb = 1 << 20
    return {
        "unclosed": "<think>" + "a" * mb,
        "open_tags": ("<tool_call>" * (mb // 11)),
        "nested": ("<think><tool_call><｜tool▁calls▁begin｜><|START_ACTION|>{[" * (mb // 60)),
        "half_tags": ("</thin <tool_ <｜tool▁call <|END_ " * (mb // 36)),
        "huge_argument": '<tool_call>{"name": "f", "arguments": {"x": "' + "y" * mb + '"}}',
        "blanks": " \n" * (mb // 2),
        "braces": "{" * mb,
    }


def survives_hostile(
    make: Callable[[], Any],
    piece: int = 16,
    outputs: Mapping[str, str] | None = None,
) -> None:
    """Each hostile output (`hostile_outputs`, or a family's own `outputs`), in pieces of
    `piece` characters, costs its length (`costs_its_length`) and fails, if at all, with a
    ParseError only."""
    for name, text in (hostile_outputs() if outputs is None else outputs).items():
        costs_its_length(lambda part: read_all(make(), part, piece), text, name)


def read_all(parser: Any, pieces: str | Sequence[str], piece: int = 16) -> None:
    """`parser` reads `pieces` (a text cut every `piece` characters, or the pieces themselves)
    and ends; a ParseError ends it too."""
    if isinstance(pieces, str):
        pieces = [pieces[i : i + piece] for i in range(0, len(pieces), piece)]
    try:
        for part in pieces:
            parser.add(part, False)
        parser.add("", True)
    except ParseError:
        pass


def costs_its_length(read: Callable[[Any], object], text: Sequence[Any], name: str = "") -> None:
    """Reading `text` costs at most a few times eight times what its first eighth costs: linear
    is 8x, quadratic 64x. A ratio within one run, in this process's CPU seconds, the best of
    three reads each (as `timeit` takes the least), since a shared machine's other work slows
    every figure; absolute seconds would say more about the machine than the parser. Below
    10 ms the eighth is noise, so it counts as 10 ms."""

    def cost(part: Sequence[Any], tries: int, enough: float) -> float:
        best = float("inf")
        for _ in range(tries):
            started = time.process_time()
            read(part)
            best = min(best, time.process_time() - started)
            if best < enough:
                break
        return best

    eighth = max(cost(text[: len(text) // 8], 3, 0.0), 0.01)
    whole = cost(text, 3, 24 * eighth)
    assert whole < 24 * eighth, (name, f"{whole:.3f} s for the whole, {eighth:.3f} s an eighth")


def ends_cost_their_length(
    make: Callable[[], Any], text: str, tails: Sequence[str], name: str = "", piece: int = 7
) -> None:
    """`costs_its_length` for `text` + each of `tails`, the text cut every `piece` characters
    and the tail its last piece, at the cost of one reading of the text for all the tails: a
    parser reads the text, a copy of it (`copy.deepcopy`, not timed) reads each tail and ends,
    and a tail's cost is the text's plus its own: what reading the whole of text + tail in one
    parser costs, with the same bound (24 times the cost of an eighth read the same way). A
    ParseError ends a reading where it is raised, as in `read_all`."""

    def feed(parser: Any, pieces: Sequence[str], final: bool) -> bool:
        """Whether `parser` read every piece (and ended, if `final`) without a ParseError."""
        try:
            for part in pieces:
                parser.add(part, False)
            if final:
                parser.add("", True)
        except ParseError:
            return False
        return True

    def costs(part: str, tries: int, enough: Sequence[float]) -> list[float]:
        best = [float("inf")] * len(tails)
        pieces = [part[i : i + piece] for i in range(0, len(part), piece)]
        for _ in range(tries):
            parser = make()
            started = time.process_time()
            going = feed(parser, pieces, final=False)
            text_cost = time.process_time() - started
            for i, tail in enumerate(tails):
                ended = copy.deepcopy(parser) if going else None
                started = time.process_time()
                if ended is not None:
                    feed(ended, [tail], final=True)
                best[i] = min(best[i], text_cost + time.process_time() - started)
            if all(b < e for b, e in zip(best, enough, strict=True)):
                break
        return best

    eighths = [max(c, 0.01) for c in costs(text[: len(text) // 8], 3, [0.0] * len(tails))]
    wholes = costs(text, 3, [24 * e for e in eighths])
    for tail, eighth, whole in zip(tails, eighths, wholes, strict=True):
        assert whole < 24 * eighth, (
            f"{name} {tail!r}",
            f"{whole:.3f} s for the whole, {eighth:.3f} s an eighth",
        )
