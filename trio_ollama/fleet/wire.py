"""What the ingress and a replica pass each other through Ray: a request as the ingress read
it, and the head of the answer; and the routing key of a model name."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import attrs

from trio_ollama.gocompat.decode import DecodeError, loads
from trio_ollama.names import ModelName, parse_name

# The multiplexed model id that sends a request to one named replica (the fleet views ask
# every replica in turn); it can never be a model's name.
TO_REPLICA = "@replica:"

# The fleet routers of this process by deployment name; the ingress asks its own for the
# replicas. Here, not in the router's module: Ray pickles a router class by value, globals and
# all, and a module it refers to by reference.
ROUTERS: dict[str, Any] = {}


@attrs.frozen
class Request:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@attrs.frozen
class Head:
    """The answer's status and headers, and which replica gave it."""

    status: int
    headers: list[tuple[str, str]]
    replica: str


def _parsed(name: str) -> ModelName | None:
    try:
        parsed = parse_name(name)
    except ValueError:
        return None
    return parsed if parsed.is_valid else None


def model_key(name: str) -> str:
    """The routing key of a model name, as `/api/ps` shows it: `smollm2:135m` for
    `smollm2:135m` and `library/smollm2:135m`, `x:latest` for `x`. A name that does not parse
    is its own key (the server will refuse it)."""
    parsed = _parsed(name)
    return name if parsed is None else parsed.display_shortest


def model_in(body: bytes) -> str:
    """The model a request body names (every API's JSON has it as "model"), or "" where the
    body is no JSON a server reads or the name is none a server takes: any replica answers
    those as one server does, and a client's text never becomes a routing key."""
    try:
        data = loads(body)  # Go's reading, nesting bounded: one of its errors, never Python's
    except DecodeError:
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and _parsed(model) is not None else ""


async def read_body(chunks: AsyncIterable[bytes], declared: int | None, limit: int) -> bytes | None:
    """A request's body, whole, or None once it is declared or found longer than `limit`
    bytes (the server's own bound): the ingress holds no more of it than a server would."""
    if declared is not None and declared > limit:
        return None
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)
