"""Ollama's OpenAI-compatible `/v1/*` layer as pure translation (reference §1.17).

Ollama serves `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/models` by
rewriting the OpenAI request into a native one, running the native handler, and rewriting each
native reply on its way out. This module is only that rewriting, over plain JSON values: the route
handlers own the HTTP, the streaming and the clock.

Requests: `chat_request`, `completion_request` and `embeddings_request` take the decoded body and
return the native request plus what the reply translation needs; they raise `APIError(400, ...)`
with `openai_type="invalid_request_error"` for the client's mistakes, in Ollama's words.

Replies: `chat_completion` / `completion` for a single native object (`"stream": false`),
`ChatStream` / `CompletionStream` (or the pure `chat_chunks`, `completion_chunk` and the usage
chunks) for native streams, `embeddings`, `models_list`, `model_retrieve`, and `error_body`.
`sse_event` and `SSE_DONE` frame the stream.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from struct import pack as struct_pack
from typing import Any, Final

import attrs

from trio_ollama.api.errors import APIError
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    FLOAT32,
    FLOAT64,
    INT,
    STRING,
    DecodeError,
    GoType,
    slice_of,
    struct,
)
from trio_ollama.names import parse_name

__all__ = [
    "SSE_DONE",
    "SYSTEM_FINGERPRINT",
    "ChatStream",
    "CompletionStream",
    "EmbeddingOptions",
    "ReplyOptions",
    "chat_chunks",
    "chat_completion",
    "chat_completion_id",
    "chat_request",
    "chat_usage_chunk",
    "completion",
    "completion_chunk",
    "completion_id",
    "completion_request",
    "completion_usage_chunk",
    "decode_body",
    "embeddings",
    "embeddings_request",
    "error_body",
    "error_type",
    "model_retrieve",
    "models_list",
    "sse_event",
]

SYSTEM_FINGERPRINT: Final = "fp_ollama"
SSE_DONE: Final = b"data: [DONE]\n\n"

INVALID_REQUEST: Final = "invalid_request_error"

_REASONING_EFFORTS: Final = ("high", "medium", "low", "none")
_IMAGE_PREFIXES: Final = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    # No media type at all: the bare base64 that `/api/chat` takes.
    "data:;base64,",
)
_ENCODING_FORMATS: Final = ("float", "base64")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# --- options handed from the request side to the reply side -------------------------------------


@attrs.frozen
class ReplyOptions:
    """How to shape the reply to a chat or completions request.

    `stream`: SSE chunks instead of one object. `include_usage`: `stream_options.include_usage`,
    which only matters when streaming (Ollama ignores it otherwise).
    """

    stream: bool = False
    include_usage: bool = False


@attrs.frozen
class EmbeddingOptions:
    """What `/v1/embeddings` needs after the native call.

    `model` is echoed as the client sent it; `encoding_format` is as sent ("" when absent),
    already validated as float or base64 in any letter case.
    """

    model: str = ""
    encoding_format: str = ""


# --- errors ---------------------------------------------------------------------------------------


def error_type(status: int) -> str:
    """The OpenAI error type Ollama (HEAD) derives from an HTTP status."""
    if status == 400:
        return INVALID_REQUEST
    if status == 404:
        return "not_found_error"
    return "api_error"


def error_body(status: int, message: str, openai_type: str | None = None) -> dict[str, Any]:
    """`{"error": {...}}` in OpenAI's shape; the type comes from `openai_type` or the status."""
    return {
        "error": {
            "message": message,
            "type": openai_type if openai_type is not None else error_type(status),
            "param": None,
            "code": None,
        }
    }


def _invalid(message: str) -> APIError:
    return APIError(400, message, openai_type=INVALID_REQUEST)


def decode_body(raw: bytes) -> Any:
    """The request body as JSON, failing the way gin's `ShouldBindJSON` does for the middleware.

    An empty body is Go's `EOF`; a syntax error is described as for the native API, since
    reproducing every Go scanner message is not worth it. `null` decodes to None, which the request
    translators treat as an empty object, as Go does.
    """
    if not raw.strip():
        raise _invalid("EOF")
    try:
        return go.loads(raw)
    except DecodeError as exc:
        raise _invalid(str(exc)) from None


# --- the request bodies, as Go structs ---------------------------------------------------------
#
# The middleware binds the body into Go structs before looking at it, so a wrongly typed field is
# rejected with Go's `json: cannot unmarshal <json> into Go struct field <Struct>.<path> of type
# <type>`, which names the field. Checking the whole body against these structs first gives the
# same first error Go reports, and lets the translation below assume well-typed values.

_STREAM_OPTIONS = struct("openai.StreamOptions", include_usage=BOOL)

_TOOL_CALL = struct(
    "openai.ToolCall",
    id=STRING,
    index=INT,
    type=STRING,
    function=struct(
        'struct { Name string "json:\\"name\\""; Arguments string "json:\\"arguments\\"" }',
        name=STRING,
        # Go wants a string; an already-decoded object is accepted below as a courtesy.
        arguments=ANY,
    ),
)

_MESSAGE = struct(
    "openai.Message",
    role=STRING,
    content=ANY,
    reasoning=STRING,
    tool_calls=slice_of(_TOOL_CALL),
    name=STRING,
    tool_call_id=STRING,
)

_CHAT_REQUEST = struct(
    "openai.ChatCompletionRequest",
    model=STRING,
    messages=slice_of(_MESSAGE),
    stream=BOOL,
    stream_options=_STREAM_OPTIONS,
    max_tokens=INT,
    max_completion_tokens=INT,
    seed=INT,
    stop=ANY,
    temperature=FLOAT64,
    frequency_penalty=FLOAT64,
    presence_penalty=FLOAT64,
    top_p=FLOAT64,
    response_format=struct(
        "openai.ResponseFormat",
        type=STRING,
        json_schema=struct("openai.JsonSchema", schema=ANY),
    ),
    tools=slice_of(
        struct(
            "api.Tool",
            type=STRING,
            function=struct("api.ToolFunction", name=STRING, description=STRING),
        )
    ),
    reasoning=struct("openai.Reasoning", effort=STRING),
    reasoning_effort=STRING,
    _debug_render_only=BOOL,
)

_COMPLETION_REQUEST = struct(
    "openai.CompletionRequest",
    model=STRING,
    prompt=STRING,
    frequency_penalty=FLOAT32,
    max_tokens=INT,
    presence_penalty=FLOAT32,
    seed=INT,
    stop=ANY,
    stream=BOOL,
    stream_options=_STREAM_OPTIONS,
    temperature=FLOAT32,
    top_p=FLOAT32,
    suffix=STRING,
    _debug_render_only=BOOL,
)

_EMBED_REQUEST = struct(
    "openai.EmbedRequest",
    input=ANY,
    model=STRING,
    dimensions=INT,
    encoding_format=STRING,
)


def _decode(body: Any, go_type: GoType) -> dict[str, Any]:
    try:
        go.check(go_type, body)
    except DecodeError as exc:
        raise _invalid(str(exc)) from None
    return {} if body is None else dict(body)


# --- requests -------------------------------------------------------------------------------------


def chat_request(body: Any) -> tuple[dict[str, Any], ReplyOptions]:
    """`/v1/chat/completions` body → native `/api/chat` request, and how to shape the reply."""
    req = _decode(body, _CHAT_REQUEST)
    messages = req.get("messages") or []
    if not messages:
        raise _invalid("[] is too short - 'messages'")

    native: dict[str, Any] = {
        "model": req.get("model") or "",
        "messages": _chat_messages(messages),
        # OpenAI's default is a single object, the opposite of the native API's.
        "stream": bool(req.get("stream")),
        "options": _chat_options(req),
    }
    fmt = _response_format(req.get("response_format"))
    if fmt is not None:
        native["format"] = fmt
    if req.get("tools"):
        native["tools"] = req["tools"]
    think = _think(req)
    if think is not None:
        native["think"] = think
    if req.get("_debug_render_only"):
        native["_debug_render_only"] = True
    return native, _reply_options(req)


def _reply_options(req: Mapping[str, Any]) -> ReplyOptions:
    stream_options = req.get("stream_options") or {}
    return ReplyOptions(
        stream=bool(req.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
    )


def _chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        # A null element decodes to Go's zero Message, which then fails for its missing content.
        msg = msg or {}
        role = msg.get("role") or ""
        tool_name = ""
        if role.lower() == "tool":
            tool_name = msg.get("name") or ""
            if not tool_name and msg.get("tool_call_id"):
                tool_name = _tool_name_for_call(messages, msg["tool_call_id"])
        content = msg.get("content")
        raw_calls = msg.get("tool_calls")
        tool_calls = _native_tool_calls(raw_calls or [])
        extras = _message_extras(
            thinking=msg.get("reasoning") or "",
            tool_calls=tool_calls,
            tool_name=tool_name,
            tool_call_id=msg.get("tool_call_id") or "",
        )
        if isinstance(content, str):
            out.append({"role": role, "content": content, **extras})
        elif isinstance(content, list):
            # As in Ollama, every part becomes a message of its own, kept in order.
            parts = [_content_part(role, part) for part in content]
            if parts:
                parts[-1].update(extras)
            out.extend(parts)
        elif raw_calls is None:
            # Content may only be left out when the message carries tool calls.
            raise _invalid(f"invalid message content type: {go.type_name(content)}")
        else:
            out.append({"role": role, "content": "", **extras})
    return out


def _message_extras(
    *, thinking: str, tool_calls: list[dict[str, Any]], tool_name: str, tool_call_id: str
) -> dict[str, Any]:
    # The native Message leaves these out when empty (`omitempty`).
    extras: dict[str, Any] = {}
    if thinking:
        extras["thinking"] = thinking
    if tool_calls:
        extras["tool_calls"] = tool_calls
    if tool_name:
        extras["tool_name"] = tool_name
    if tool_call_id:
        extras["tool_call_id"] = tool_call_id
    return extras


def _tool_name_for_call(messages: Sequence[Mapping[str, Any]], call_id: str) -> str:
    # Searching from the end means a reused call id resolves to its latest use.
    for msg in reversed(messages):
        for call in (msg or {}).get("tool_calls") or []:
            if (call or {}).get("id") == call_id:
                return str((call.get("function") or {}).get("name") or "")
    return ""


def _content_part(role: str, part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _invalid("invalid message format")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise _invalid("invalid message format")
        return {"role": role, "content": text}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise _invalid("invalid message format")
        return {"role": role, "content": "", "images": [_image_from_url(url)]}
    raise _invalid("invalid message format")


def _image_from_url(url: str) -> str:
    """A data URL's image as the canonical base64 the native API takes."""
    for prefix in _IMAGE_PREFIXES:
        if url.startswith(prefix):
            try:
                data = base64.b64decode(url[len(prefix) :], validate=True)
            except (binascii.Error, ValueError):
                break
            return base64.b64encode(data).decode("ascii")
    # Remote URLs are refused too: the server never fetches on a client's behalf.
    raise _invalid("invalid image input")


def _native_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments as a JSON string) → native ones (arguments as an object)."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(calls):
        call = item or {}
        function = call.get("function") or {}
        native: dict[str, Any] = {}
        if call.get("id"):
            native["id"] = call["id"]
        native["function"] = {
            "index": index,
            "name": function.get("name") or "",
            "arguments": _tool_arguments(function.get("arguments")),
        }
        out.append(native)
    return out


def _tool_arguments(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            raise _invalid("invalid tool call arguments") from None
        # `null` decodes to Go's nil map: no arguments.
        if parsed is None:
            return {}
        if isinstance(parsed, dict):
            return parsed
    raise _invalid("invalid tool call arguments")


def _stop_strings(stop: Any, *, strict: bool) -> list[str] | None:
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, list):
        return None
    stops: list[str] = []
    for item in stop:
        if isinstance(item, str):
            stops.append(item)
        elif strict:
            raise _invalid(f"invalid type for 'stop' field: {go.type_name(item)}")
    # Ollama sends an empty list as null, which leaves the model's own stop words in place.
    return stops or None


def _chat_options(req: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    stops = _stop_strings(req.get("stop"), strict=False)
    if stops is not None:
        options["stop"] = stops
    # `max_completion_tokens` is OpenAI's newer name; a client sending both means it.
    max_tokens = req.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = req.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    # OpenAI's sampling defaults, not the model's: clients expect 1.0 when they send nothing.
    temperature = req.get("temperature")
    options["temperature"] = 1.0 if temperature is None else temperature
    if req.get("seed") is not None:
        options["seed"] = req["seed"]
    for penalty in ("frequency_penalty", "presence_penalty"):
        if req.get(penalty) is not None:
            options[penalty] = req[penalty]
    top_p = req.get("top_p")
    options["top_p"] = 1.0 if top_p is None else top_p
    return options


def _response_format(response_format: Mapping[str, Any] | None) -> Any:
    if not response_format:
        return None
    kind = (response_format.get("type") or "").strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def _think(req: Mapping[str, Any]) -> bool | str | None:
    # A `reasoning` object wins even when its effort is empty, as in Ollama.
    if req.get("reasoning") is not None:
        effort = req["reasoning"].get("effort") or ""
    else:
        effort = req.get("reasoning_effort") or ""
    if not effort:
        return None
    if effort not in _REASONING_EFFORTS:
        allowed = '"high", "medium", "low", or "none"'
        raise _invalid(f"invalid reasoning value: '{effort}' (must be {allowed})")
    return False if effort == "none" else effort


def completion_request(body: Any) -> tuple[dict[str, Any], ReplyOptions]:
    """`/v1/completions` body → native `/api/generate` request, and how to shape the reply."""
    req = _decode(body, _COMPLETION_REQUEST)
    options: dict[str, Any] = {}
    stops = _stop_strings(req.get("stop"), strict=True)
    if stops is not None:
        options["stop"] = stops
    if req.get("max_tokens") is not None:
        options["num_predict"] = req["max_tokens"]
    temperature = req.get("temperature")
    options["temperature"] = 1.0 if temperature is None else temperature
    if req.get("seed") is not None:
        options["seed"] = req["seed"]
    # Plain (not pointer) fields in Ollama's struct: always sent, 0 when absent.
    options["frequency_penalty"] = req.get("frequency_penalty") or 0.0
    options["presence_penalty"] = req.get("presence_penalty") or 0.0
    # Here 0 cannot be told from absent, so both mean OpenAI's default.
    options["top_p"] = req.get("top_p") or 1.0

    native: dict[str, Any] = {
        "model": req.get("model") or "",
        "prompt": req.get("prompt") or "",
        "options": options,
        "stream": bool(req.get("stream")),
    }
    if req.get("suffix"):
        native["suffix"] = req["suffix"]
    if req.get("_debug_render_only"):
        native["_debug_render_only"] = True
    return native, _reply_options(req)


def embeddings_request(body: Any) -> tuple[dict[str, Any], EmbeddingOptions]:
    """`/v1/embeddings` body → native `/api/embed` request, and what the reply needs."""
    req = _decode(body, _EMBED_REQUEST)
    encoding_format = req.get("encoding_format") or ""
    if encoding_format and encoding_format.lower() not in _ENCODING_FORMATS:
        raise _invalid(
            f"Invalid value for 'encoding_format' = {encoding_format}. "
            "Supported values: ['float', 'base64']."
        )
    text = req.get("input")
    if text == "":
        # One empty input still gets its one (empty-prompt) vector back.
        text = [""]
    if text is None or text == []:
        raise _invalid("invalid input")
    native: dict[str, Any] = {"model": req.get("model") or "", "input": text}
    if req.get("dimensions"):
        native["dimensions"] = req["dimensions"]
    model = req.get("model") or ""
    return native, EmbeddingOptions(model=model, encoding_format=encoding_format)


# --- ids and framing ------------------------------------------------------------------------------


def _draw(rng: random.Random | None) -> int:
    return rng.randrange(999) if rng is not None else random.randrange(999)


def chat_completion_id(rng: random.Random | None = None) -> str:
    """`chatcmpl-<0..998>`: Ollama's ids are this short and may repeat."""
    return f"chatcmpl-{_draw(rng)}"


def completion_id(rng: random.Random | None = None) -> str:
    """`cmpl-<0..998>`."""
    return f"cmpl-{_draw(rng)}"


def sse_event(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event: `data: <compact JSON>` and a blank line."""
    text = data if isinstance(data, str) else gojson.dumps(data)
    return f"data: {text}\n\n".encode()


# --- replies: chat --------------------------------------------------------------------------------


def _usage(native: Mapping[str, Any]) -> dict[str, int]:
    prompt = int(native.get("prompt_eval_count") or 0)
    completion = int(native.get("eval_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _openai_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Native tool calls (arguments as an object) → OpenAI ones (arguments as a JSON string)."""
    out: list[dict[str, Any]] = []
    for call in calls:
        function = call.get("function") or {}
        out.append(
            {
                "id": call.get("id") or "",
                "index": int(function.get("index") or 0),
                "type": "function",
                "function": {
                    "name": function.get("name") or "",
                    "arguments": gojson.dumps(function.get("arguments") or {}),
                },
            }
        )
    return out


def _message(
    role: str, content: str, thinking: str, tool_calls: list[dict[str, Any]]
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": content}
    if thinking:
        message["reasoning"] = thinking
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def chat_completion(native: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]:
    """A complete native chat reply (`"stream": false`) → `chat.completion`.

    `native` is what `/api/chat` returns without streaming: the message holds the whole content,
    thinking and tool calls, and the metrics are the final ones.
    """
    msg = native.get("message") or {}
    tool_calls = _openai_tool_calls(msg.get("tool_calls") or [])
    finish = "tool_calls" if tool_calls else native.get("done_reason") or None
    out: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": native.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": _message(
                    msg.get("role") or "assistant",
                    msg.get("content") or "",
                    msg.get("thinking") or "",
                    tool_calls,
                ),
                "finish_reason": finish,
            }
        ],
        "usage": _usage(native),
    }
    if native.get("_debug_info") is not None:
        out["_debug_info"] = native["_debug_info"]
    return out


def _chat_chunk(
    native: Mapping[str, Any],
    *,
    id: str,
    created: int,
    content: str,
    thinking: str,
    tool_calls: list[dict[str, Any]],
    finish_reason: str | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": native.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "delta": _message("assistant", content, thinking, tool_calls),
                "finish_reason": finish_reason,
            }
        ],
    }


def chat_chunks(
    native: Mapping[str, Any], *, id: str, created: int, tool_call_sent: bool = False
) -> list[dict[str, Any]]:
    """One native chat stream object → its `chat.completion.chunk`s (one, or two).

    Every delta carries `role: "assistant"`, as Ollama's do. `finish_reason` stays null until the
    native `done_reason` arrives, and is then "tool_calls" if any tool call went out in this
    stream (`tool_call_sent`, or this object's own). An object with both thinking and content (or
    tool calls) becomes a reasoning-only chunk followed by the rest, so clients that show
    reasoning separately never see the two in one delta.
    """
    msg = native.get("message") or {}
    content = msg.get("content") or ""
    thinking = msg.get("thinking") or ""
    tool_calls = _openai_tool_calls(msg.get("tool_calls") or [])
    finish: str | None = native.get("done_reason") or None
    if finish and (tool_call_sent or tool_calls):
        finish = "tool_calls"
    if thinking and (content or tool_calls):
        return [
            _chat_chunk(
                native,
                id=id,
                created=created,
                content="",
                thinking=thinking,
                tool_calls=[],
                finish_reason=None,
            ),
            _chat_chunk(
                native,
                id=id,
                created=created,
                content=content,
                thinking="",
                tool_calls=tool_calls,
                finish_reason=finish,
            ),
        ]
    return [
        _chat_chunk(
            native,
            id=id,
            created=created,
            content=content,
            thinking=thinking,
            tool_calls=tool_calls,
            finish_reason=finish,
        )
    ]


def chat_usage_chunk(native_final: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]:
    """The extra chunk `stream_options.include_usage` asks for: no choices, the final usage."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": native_final.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [],
        "usage": _usage(native_final),
    }


def _stream_error(native: Mapping[str, Any]) -> list[bytes]:
    # The native stream reports a late failure as a final `{"error": ...}` line. OpenAI's own
    # streams put the error object in an event, which its clients raise as an exception.
    return [sse_event(error_body(500, str(native["error"])))]


@attrs.define
class ChatStream:
    """Turns one native `/api/chat` stream into the SSE bytes of `/v1/chat/completions`.

    Feed each native object to `events` in order and write what it returns; after the `done`
    object it has also produced the usage chunk (when asked for) and `data: [DONE]`.
    """

    id: str
    created: int
    include_usage: bool = False
    tool_call_sent: bool = False

    def events(self, native: Mapping[str, Any]) -> list[bytes]:
        if native.get("error") is not None:
            return _stream_error(native)
        out: list[bytes] = []
        chunks = chat_chunks(
            native, id=self.id, created=self.created, tool_call_sent=self.tool_call_sent
        )
        for chunk in chunks:
            if chunk["choices"][0]["delta"].get("tool_calls"):
                self.tool_call_sent = True
            out.append(sse_event(chunk))
        if native.get("done"):
            if self.include_usage:
                out.append(sse_event(chat_usage_chunk(native, id=self.id, created=self.created)))
            out.append(SSE_DONE)
        return out


# --- replies: completions -------------------------------------------------------------------------


def completion(native: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]:
    """A complete native generate reply (`"stream": false`) → `text_completion`."""
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": native.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "text": native.get("response") or "",
                "index": 0,
                "finish_reason": native.get("done_reason") or None,
            }
        ],
        "usage": _usage(native),
    }


def completion_chunk(
    native: Mapping[str, Any], *, id: str, created: int, include_usage: bool = False
) -> dict[str, Any]:
    """One native generate stream object → a streamed `text_completion` chunk.

    With `include_usage` every chunk carries an all-zero `usage`, as Ollama's do; the real
    numbers come in `completion_usage_chunk`.
    """
    chunk: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": created,
        "choices": [
            {
                "text": native.get("response") or "",
                "index": 0,
                "finish_reason": native.get("done_reason") or None,
            }
        ],
        "model": native.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if include_usage:
        chunk["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return chunk


def completion_usage_chunk(
    native_final: Mapping[str, Any], *, id: str, created: int
) -> dict[str, Any]:
    """The final usage-only chunk of a `/v1/completions` stream with `include_usage`."""
    return {
        "id": id,
        "object": "text_completion",
        "created": created,
        "choices": [],
        "model": native_final.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "usage": _usage(native_final),
    }


@attrs.define
class CompletionStream:
    """Turns one native `/api/generate` stream into the SSE bytes of `/v1/completions`."""

    id: str
    created: int
    include_usage: bool = False

    def events(self, native: Mapping[str, Any]) -> list[bytes]:
        if native.get("error") is not None:
            return _stream_error(native)
        chunk = completion_chunk(
            native, id=self.id, created=self.created, include_usage=self.include_usage
        )
        out = [sse_event(chunk)]
        if native.get("done"):
            if self.include_usage:
                usage = completion_usage_chunk(native, id=self.id, created=self.created)
                out.append(sse_event(usage))
            out.append(SSE_DONE)
        return out


# --- replies: embeddings and models ---------------------------------------------------------------


def _float32_base64(vector: Sequence[float]) -> str:
    # OpenAI's base64 format: the vector as little-endian float32 bytes.
    return base64.b64encode(struct_pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings(native: Mapping[str, Any], model: str, encoding_format: str = "") -> dict[str, Any]:
    """A native `/api/embed` reply → OpenAI's embedding list.

    `model` is the request's, as sent. Like Ollama, no vectors at all gives `"data": null`, and a
    reply without `embeddings` gives an empty shell.
    """
    vectors = native.get("embeddings")
    if vectors is None:
        return {
            "object": "",
            "data": None,
            "model": "",
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
    as_base64 = encoding_format.lower() == "base64"
    data = [
        {
            "object": "embedding",
            "embedding": _float32_base64(vector) if as_base64 else list(vector),
            "index": i,
        }
        for i, vector in enumerate(vectors)
    ]
    tokens = int(native.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data or None,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _unix_seconds(when: datetime | str | float) -> int:
    """Go's `Time.Unix()`: whole seconds, rounded down."""
    if isinstance(when, int | float):
        return int(when // 1)
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return (moment - _EPOCH) // timedelta(seconds=1)


def _model(name: str, modified_at: datetime | str | float) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": _unix_seconds(modified_at),
        "owned_by": parse_name(name).namespace,
    }


def models_list(tags: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `models` of a native `/api/tags` reply → `/v1/models`.

    `owned_by` is the name's namespace ("library" for official models). Ollama builds the list
    from a nil slice, so no models at all is `"data": null`, not `[]`.
    """
    data = [_model(tag.get("name") or "", tag.get("modified_at") or 0) for tag in tags]
    return {"object": "list", "data": data or None}


def model_retrieve(name: str, modified_at: datetime | str | float) -> dict[str, Any]:
    """`/v1/models/{name}`: the id is the path parameter exactly as the client wrote it."""
    return _model(name, modified_at)
