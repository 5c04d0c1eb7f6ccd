"""What the ingress and a replica pass each other through Ray: a request as the ingress read
it, and the head of the answer; and the routing key of a model name."""

from __future__ import annotations

import json
from typing import Any

import attrs

from trio_ollama.names import parse_name

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


def model_key(name: str) -> str:
    """The routing key of a model name, as `/api/ps` shows it: `smollm2:135m` for
    `smollm2:135m` and `library/smollm2:135m`, `x:latest` for `x`. A name that does not parse
    is its own key (the server will refuse it)."""
    try:
        parsed = parse_name(name)
    except ValueError:
        return name
    return parsed.display_shortest if parsed.is_valid else name


def model_in(body: bytes) -> str:
    """The model a request body names (every API's JSON has it as "model"), or ""."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else ""
