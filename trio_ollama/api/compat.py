"""What the compatible APIs (OpenAI chat and completions, OpenAI Responses, Anthropic Messages)
share when they read a request: the body and its Go structs, the client's mistakes as OpenAI's
`invalid_request_error`, images, tool-call arguments, and the built-in web-search tool.

Each is written once here; the translations (`openai_requests.py`, `openai_responses.py`,
`anthropic.py`) keep only what differs between the APIs (which texts Ollama's middleware
answers with, which tool types ask for a web search, how a search's failure is said).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

from trio_ollama.api.errors import APIError
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat.decode import STRING, DecodeError, struct_type

INVALID_REQUEST: Final = "invalid_request_error"

# The data URLs Ollama's middleware takes an image from (`decodeImageURL`).
_IMAGE_PREFIXES: Final = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    # No media type at all: the bare base64 that `/api/chat` takes.
    "data:;base64,",
)

T = TypeVar("T")


def invalid(message: str) -> APIError:
    """The client's mistake: a 400, typed for the OpenAI layer (the Anthropic layer derives its
    own type from the status)."""
    return APIError(400, message, openai_type=INVALID_REQUEST)


# --- the body -------------------------------------------------------------------------------------


def decode_body(raw: bytes) -> Any:
    """The request body as JSON, failing the way gin's `ShouldBindJSON` does for the middleware.

    An empty body is Go's `EOF`; a syntax error is described as for the native API, since
    reproducing every Go scanner message is not worth it. `null` decodes to None, which the
    request translators treat as an empty object, as Go does.
    """
    if not raw.strip():
        raise invalid("EOF")
    try:
        return go.loads(raw)
    except DecodeError as exc:
        raise invalid(str(exc)) from None


def unmarshal(cls: type[T], body: Any) -> T:
    """The body as the Go struct `cls` declares it, or Go's error for the client."""
    try:
        if body is not None and not isinstance(body, dict):
            go.check(struct_type(cls), body)  # Go's "into Go value of type ..." text
        return go.unmarshal(cls, body or {})
    except DecodeError as exc:
        raise invalid(str(exc)) from None


def nested(cls: type[T]) -> Any:
    """A `convert` for a field that is itself a declared struct (already type-checked)."""
    return lambda value, path: go.build(cls, value, path)


def each(cls: type[T]) -> Any:
    """A `convert` for a list of declared structs; a null element is Go's zero value."""
    return lambda values, path: tuple(go.build(cls, v, path) for v in values)


# --- what a message carries -----------------------------------------------------------------------


def image(value: str, *, data_url: bool = False) -> str:
    """An image as the canonical base64 the native API takes: `value` is base64 (Anthropic's
    image source), or with `data_url` a data URL of an image (OpenAI's `image_url`, a Responses
    `input_image`). A remote URL is refused: the server never fetches on a client's behalf.
    The texts are Ollama's for each form."""
    if data_url:
        prefix = next((p for p in _IMAGE_PREFIXES if value.startswith(p)), None)
        if prefix is None:
            raise invalid("invalid image input")
        value = value[len(prefix) :]
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(
            "invalid image input" if data_url else f"invalid base64 image data: {exc}"
        ) from None
    return base64.b64encode(decoded).decode("ascii")


def tool_arguments(value: Any, *, failure: str) -> dict[str, Any]:
    """A tool call's arguments as a client sent them back: a JSON object in a string, as Go
    reads it (`null` is none), or, as a courtesy, an object already. Anything else is refused
    with `failure`, the caller's text in Ollama's words, where `{error}` is the decoder's."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise invalid(failure.format(error=go.type_error(STRING, value)))
    try:
        return go.tool_arguments(value)
    except DecodeError as exc:
        raise invalid(failure.format(error=exc)) from None


# --- the web-search tool --------------------------------------------------------------------------

# The function a built-in web-search tool becomes for the model (Ollama's private contract: a
# client's own function of that name is dropped beside it, so that a call has one meaning).
WEB_SEARCH: Final = "web_search"

# What a search ends in here. Ollama runs the model's searches on ollama.com and answers with
# the results; this server reaches no network, so each API answers a search as Ollama answers one
# that fails, in its own shape (an Anthropic `web_search_tool_result_error`, a failed response).
NO_WEB_SEARCH: Final = "web search is unavailable: this server does not reach the network"
NO_QUERY: Final = "web_search requires a non-empty string query"


def web_search_tool(description: str, query: str) -> dict[str, Any]:
    """The native function tool a built-in web-search tool becomes; `description` and the
    `query` parameter's are each API's (Ollama words them differently for each)."""
    parameters = {
        "type": "object",
        "required": ["query"],
        "properties": {"query": {"type": "string", "description": query}},
    }
    return {
        "type": "function",
        "function": {"name": WEB_SEARCH, "description": description, "parameters": parameters},
    }


def web_search_call(calls: Iterable[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]] | None:
    """The model's first call of the web-search function among native tool calls, as its
    query ("" when missing or not a string) and the call, or None when it made none."""
    for call in calls:
        function = call.get("function") or {}
        if function.get("name") == WEB_SEARCH:
            query = (function.get("arguments") or {}).get("query")
            return (query if isinstance(query, str) else ""), call
    return None
