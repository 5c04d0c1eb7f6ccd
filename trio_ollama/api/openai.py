"""Ollama's OpenAI-compatible `/v1/*` layer as pure translation (Ollama's `openai/openai.go`
and `middleware/openai.go`).

Ollama serves `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/models` by
rewriting the OpenAI request into a native one, running the native handler, and rewriting each
native reply on its way out. These modules are only that rewriting, over plain JSON values: the
route handlers own the HTTP, the streaming and the clock.

Requests (`openai_requests.py`, re-exported here): `chat_request`, `completion_request` and
`embeddings_request` take the decoded body and return the native request plus what the reply
translation needs; they raise `APIError(400, ...)` with `openai_type="invalid_request_error"`
for the client's mistakes, in Ollama's words.

Replies (this module): `chat_completion` / `completion` for a single native object
(`"stream": false`), `ChatStream` / `CompletionStream` (or the pure `chat_chunks`,
`completion_chunk` and the usage chunks) for native streams, `embeddings`, `models_list`,
`model_retrieve`, and `error_body`. `sse_event` and `SSE_DONE` frame the stream.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from struct import pack as struct_pack
from typing import Any, Final

import attrs

from trio_ollama.api.compat import INVALID_REQUEST, decode_body
from trio_ollama.api.openai_requests import (
    EmbeddingOptions,
    ReplyOptions,
    chat_request,
    completion_request,
    embeddings_request,
)
from trio_ollama.gocompat import gojson
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
    "short_id",
    "sse_event",
]

SYSTEM_FINGERPRINT: Final = "fp_ollama"
SSE_DONE: Final = b"data: [DONE]\n\n"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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


# --- ids and framing ------------------------------------------------------------------------------


def short_id(prefix: str, below: int, rng: random.Random | None = None) -> str:
    """`<prefix><0..below-1>`: Ollama's ids are this short and may repeat (`rng`, for tests, makes
    them reproducible)."""
    return f"{prefix}{rng.randrange(below) if rng is not None else random.randrange(below)}"


def chat_completion_id(rng: random.Random | None = None) -> str:
    """`chatcmpl-<0..998>`."""
    return short_id("chatcmpl-", 999, rng)


def completion_id(rng: random.Random | None = None) -> str:
    """`cmpl-<0..998>`."""
    return short_id("cmpl-", 999, rng)


def sse_event(data: Mapping[str, Any] | str, event: str = "") -> bytes:
    """One server-sent event: `data: <compact JSON>` and a blank line, after an `event:` line
    when `event` names the type (Anthropic's and the Responses API's streams do)."""
    text = data if isinstance(data, str) else gojson.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


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
        **_head("chat.completion", native, id=id, created=created),
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
                **_choice_logprobs(native),
            }
        ],
        "usage": _usage(native),
    }
    if native.get("_debug_info") is not None:
        out["_debug_info"] = native["_debug_info"]
    return out


def _head(object: str, native: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]:
    """What opens a chat reply, chunk or not, and a whole completion, in the order of Ollama's
    structs (a completion chunk has its choices before the model, so it writes its own)."""
    return {
        "id": id,
        "object": object,
        "created": created,
        "model": native.get("model") or "",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _choice_logprobs(native: Mapping[str, Any]) -> dict[str, Any]:
    """A choice's `logprobs` as Ollama writes them: `{"content": [...]}` holding its native
    entries (token, logprob, bytes, top_logprobs), left out when there are none."""
    entries = native.get("logprobs")
    return {"logprobs": {"content": list(entries)}} if entries else {}


def _chat_chunk(
    native: Mapping[str, Any],
    *,
    id: str,
    created: int,
    content: str,
    thinking: str,
    tool_calls: list[dict[str, Any]],
    finish_reason: str | None,
    logprobs: bool = True,
) -> dict[str, Any]:
    return {
        **_head("chat.completion.chunk", native, id=id, created=created),
        "choices": [
            {
                "index": 0,
                "delta": _message("assistant", content, thinking, tool_calls),
                "finish_reason": finish_reason,
                **(_choice_logprobs(native) if logprobs else {}),
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
    # (content, thinking, tool calls, finish reason, logprobs) of each chunk.
    parts: list[tuple[str, str, list[dict[str, Any]], str | None, bool]]
    if thinking and (content or tool_calls):
        # The logprobs go with the reasoning chunk, as in Ollama.
        parts = [("", thinking, [], None, True), (content, "", tool_calls, finish, False)]
    else:
        parts = [(content, thinking, tool_calls, finish, True)]
    return [
        _chat_chunk(
            native,
            id=id,
            created=created,
            content=text,
            thinking=reasoning,
            tool_calls=calls,
            finish_reason=reason,
            logprobs=logprobs,
        )
        for text, reasoning, calls, reason, logprobs in parts
    ]


def chat_usage_chunk(native_final: Mapping[str, Any], *, id: str, created: int) -> dict[str, Any]:
    """The extra chunk `stream_options.include_usage` asks for: no choices, the final usage."""
    return {
        **_head("chat.completion.chunk", native_final, id=id, created=created),
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
        **_head("text_completion", native, id=id, created=created),
        "choices": [
            {
                "text": native.get("response") or "",
                "index": 0,
                "finish_reason": native.get("done_reason") or None,
                **_choice_logprobs(native),
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
                **_choice_logprobs(native),
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
