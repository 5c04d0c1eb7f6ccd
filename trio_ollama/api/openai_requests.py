"""The OpenAI layer's requests (Ollama's `openai/openai.go`): each body declared once, as the
Go struct Ollama's middleware binds it into, then translated into a native request.

The declarations use the same `go_field` as the native bodies (`schemas.py`), so a wrongly typed
field gets Go's `json: cannot unmarshal ...` text naming it, the first in document order, and
the translation reads well-typed attributes. Client mistakes raise `APIError(400, ...)` with
`openai_type="invalid_request_error"`, in Ollama's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import attrs

from trio_ollama.api import compat
from trio_ollama.api.compat import each, invalid, nested, unmarshal
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    FLOAT32,
    FLOAT64,
    INT,
    STRING,
    go_field,
    slice_of,
    struct,
    struct_type,
)

_ENCODING_FORMATS: Final = ("float", "base64")


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


# --- declarations ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StreamOptions:
    GO_NAME: ClassVar[str] = "openai.StreamOptions"

    include_usage: bool = go_field(BOOL, default=False)


@attrs.frozen(kw_only=True)
class ToolCallFunction:
    GO_NAME: ClassVar[str] = (
        'struct { Name string "json:\\"name\\""; Arguments string "json:\\"arguments\\"" }'
    )

    name: str = go_field(STRING, default="")
    # Go wants a string; an already-decoded object is accepted as a courtesy.
    arguments: Any = go_field(ANY, default=None)


@attrs.frozen(kw_only=True)
class ToolCall:
    GO_NAME: ClassVar[str] = "openai.ToolCall"

    id: str = go_field(STRING, default="")
    index: int = go_field(INT, default=0)
    type: str = go_field(STRING, default="")
    function: ToolCallFunction = go_field(
        struct_type(ToolCallFunction),
        factory=ToolCallFunction,
        convert=nested(ToolCallFunction),
    )


@attrs.frozen(kw_only=True)
class Message:
    GO_NAME: ClassVar[str] = "openai.Message"

    role: str = go_field(STRING, default="")
    content: Any = go_field(ANY, default=None)  # a string, a list of parts, or absent
    reasoning: str = go_field(STRING, default="")
    # None when absent: content may only be left out by a message that has tool calls.
    tool_calls: tuple[ToolCall, ...] | None = go_field(
        slice_of(struct_type(ToolCall)), default=None, convert=each(ToolCall)
    )
    name: str = go_field(STRING, default="")
    tool_call_id: str = go_field(STRING, default="")


@attrs.frozen(kw_only=True)
class JsonSchema:
    GO_NAME: ClassVar[str] = "openai.JsonSchema"

    schema: Any = go_field(ANY, default=None)


@attrs.frozen(kw_only=True)
class ResponseFormat:
    GO_NAME: ClassVar[str] = "openai.ResponseFormat"

    type: str = go_field(STRING, default="")
    json_schema: JsonSchema | None = go_field(
        struct_type(JsonSchema), default=None, convert=nested(JsonSchema)
    )


@attrs.frozen(kw_only=True)
class Reasoning:
    GO_NAME: ClassVar[str] = "openai.Reasoning"

    effort: str = go_field(STRING, default="")


# Tools go to the native request as the client sent them; Go's `api.Tool` fixes their shape.
_TOOL = struct(
    "api.Tool",
    type=STRING,
    function=struct("api.ToolFunction", name=STRING, description=STRING),
)


def _tools(values: list[dict[str, Any] | None], path: str) -> tuple[dict[str, Any], ...]:
    return tuple(tool or {} for tool in values)


@attrs.frozen(kw_only=True)
class ChatCompletionRequest:
    """`POST /v1/chat/completions`. Sampling fields are None when absent (OpenAI's defaults,
    not the model's, then apply)."""

    GO_NAME: ClassVar[str] = "openai.ChatCompletionRequest"

    model: str = go_field(STRING, default="")
    messages: tuple[Message, ...] = go_field(
        slice_of(struct_type(Message)), default=(), convert=each(Message)
    )
    stream: bool = go_field(BOOL, default=False)
    stream_options: StreamOptions | None = go_field(
        struct_type(StreamOptions), default=None, convert=nested(StreamOptions)
    )
    max_tokens: int | None = go_field(INT, default=None)
    max_completion_tokens: int | None = go_field(INT, default=None)
    seed: int | None = go_field(INT, default=None)
    stop: Any = go_field(ANY, default=None)
    temperature: float | None = go_field(FLOAT64, default=None)
    frequency_penalty: float | None = go_field(FLOAT64, default=None)
    presence_penalty: float | None = go_field(FLOAT64, default=None)
    top_p: float | None = go_field(FLOAT64, default=None)
    response_format: ResponseFormat | None = go_field(
        struct_type(ResponseFormat), default=None, convert=nested(ResponseFormat)
    )
    tools: tuple[dict[str, Any], ...] = go_field(slice_of(_TOOL), default=(), convert=_tools)
    reasoning: Reasoning | None = go_field(
        struct_type(Reasoning), default=None, convert=nested(Reasoning)
    )
    reasoning_effort: str = go_field(STRING, default="")
    logprobs: bool | None = go_field(BOOL, default=None)
    top_logprobs: int = go_field(INT, default=0)
    debug_render_only: bool = go_field(BOOL, default=False, json="_debug_render_only")
    priority: int | None = go_field(INT, default=None)  # vLLM's extension, passed on


@attrs.frozen(kw_only=True)
class CompletionRequest:
    """`POST /v1/completions`. Unlike chat, Ollama's struct has plain (not pointer) penalties
    and top_p: absent and 0 cannot be told apart."""

    GO_NAME: ClassVar[str] = "openai.CompletionRequest"

    model: str = go_field(STRING, default="")
    prompt: str = go_field(STRING, default="")
    frequency_penalty: float = go_field(FLOAT32, default=0.0)
    max_tokens: int | None = go_field(INT, default=None)
    presence_penalty: float = go_field(FLOAT32, default=0.0)
    seed: int | None = go_field(INT, default=None)
    stop: Any = go_field(ANY, default=None)
    stream: bool = go_field(BOOL, default=False)
    stream_options: StreamOptions | None = go_field(
        struct_type(StreamOptions), default=None, convert=nested(StreamOptions)
    )
    temperature: float | None = go_field(FLOAT32, default=None)
    top_p: float = go_field(FLOAT32, default=0.0)
    suffix: str = go_field(STRING, default="")
    # The legacy API's logprobs: how many alternatives per token (more than 0 turns them on).
    logprobs: int | None = go_field(INT, default=None)
    debug_render_only: bool = go_field(BOOL, default=False, json="_debug_render_only")
    priority: int | None = go_field(INT, default=None)  # vLLM's extension, passed on


@attrs.frozen(kw_only=True)
class EmbedRequest:
    """`POST /v1/embeddings`."""

    GO_NAME: ClassVar[str] = "openai.EmbedRequest"

    input: Any = go_field(ANY, default=None)
    model: str = go_field(STRING, default="")
    dimensions: int = go_field(INT, default=0)
    encoding_format: str = go_field(STRING, default="")


# --- chat -----------------------------------------------------------------------------------------


def chat_request(body: Any) -> tuple[dict[str, Any], ReplyOptions]:
    """`/v1/chat/completions` body → native `/api/chat` request, and how to shape the reply."""
    req = unmarshal(ChatCompletionRequest, body)
    if not req.messages:
        raise invalid("[] is too short - 'messages'")

    native: dict[str, Any] = {
        "model": req.model,
        "messages": _chat_messages(req.messages),
        # OpenAI's default is a single object, the opposite of the native API's.
        "stream": req.stream,
        "options": _chat_options(req),
    }
    fmt = _response_format(req.response_format)
    if fmt is not None:
        native["format"] = fmt
    if req.tools:
        native["tools"] = list(req.tools)
    think = _think(req)
    if think is not None:
        native["think"] = think
    if req.logprobs:
        native["logprobs"] = True
    if req.top_logprobs:
        native["top_logprobs"] = req.top_logprobs
    if req.debug_render_only:
        native["_debug_render_only"] = True
    if req.priority is not None:
        native["priority"] = req.priority
    return native, _reply_options(req.stream, req.stream_options)


def _reply_options(stream: bool, options: StreamOptions | None) -> ReplyOptions:
    return ReplyOptions(stream=stream, include_usage=options is not None and options.include_usage)


def _chat_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        tool_name = ""
        if msg.role.lower() == "tool":
            tool_name = msg.name
            if not tool_name and msg.tool_call_id:
                tool_name = _tool_name_for_call(messages, msg.tool_call_id)
        extras = _message_extras(
            thinking=msg.reasoning,
            tool_calls=_native_tool_calls(msg.tool_calls or ()),
            tool_name=tool_name,
            tool_call_id=msg.tool_call_id,
        )
        if isinstance(msg.content, str):
            out.append({"role": msg.role, "content": msg.content, **extras})
        elif isinstance(msg.content, list):
            # As in Ollama, every part becomes a message of its own, kept in order.
            parts = [_content_part(msg.role, part) for part in msg.content]
            if parts:
                parts[-1].update(extras)
            out.extend(parts)
        elif msg.tool_calls is None:
            # Content may only be left out when the message carries tool calls.
            raise invalid(f"invalid message content type: {go.type_name(msg.content)}")
        else:
            out.append({"role": msg.role, "content": "", **extras})
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


def _tool_name_for_call(messages: Sequence[Message], call_id: str) -> str:
    # Searching from the end means a reused call id resolves to its latest use.
    for msg in reversed(messages):
        for call in msg.tool_calls or ():
            if call.id == call_id:
                return call.function.name
    return ""


def _content_part(role: str, part: Any) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise invalid("invalid message format")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid("invalid message format")
        return {"role": role, "content": text}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise invalid("invalid message format")
        return {"role": role, "content": "", "images": [compat.image(url, data_url=True)]}
    raise invalid("invalid message format")


def _native_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """OpenAI tool calls (arguments as a JSON string) → native ones (arguments as an object)."""
    out: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        native: dict[str, Any] = {}
        if call.id:
            native["id"] = call.id
        native["function"] = {
            "index": index,
            "name": call.function.name,
            "arguments": compat.tool_arguments(
                call.function.arguments, failure="invalid tool call arguments"
            ),
        }
        out.append(native)
    return out


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
            raise invalid(f"invalid type for 'stop' field: {go.type_name(item)}")
    # Ollama sends an empty list as null, which leaves the model's own stop words in place.
    return stops or None


def _chat_options(req: ChatCompletionRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    stops = _stop_strings(req.stop, strict=False)
    if stops is not None:
        options["stop"] = stops
    # `max_completion_tokens` is OpenAI's newer name; a client sending both means it.
    max_tokens = req.max_completion_tokens
    if max_tokens is None:
        max_tokens = req.max_tokens
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    # OpenAI's sampling defaults, not the model's: clients expect 1.0 when they send nothing.
    options["temperature"] = 1.0 if req.temperature is None else req.temperature
    if req.seed is not None:
        options["seed"] = req.seed
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    options["top_p"] = 1.0 if req.top_p is None else req.top_p
    return options


def _response_format(response_format: ResponseFormat | None) -> Any:
    if response_format is None:
        return None
    kind = response_format.type.strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return None if response_format.json_schema is None else response_format.json_schema.schema
    return None


def _think(req: ChatCompletionRequest) -> bool | str | None:
    # A `reasoning` object wins even when its effort is empty, as in Ollama.
    effort = req.reasoning.effort if req.reasoning is not None else req.reasoning_effort
    return compat.think_from_effort(effort)


# --- completions and embeddings -------------------------------------------------------------------


def completion_request(body: Any) -> tuple[dict[str, Any], ReplyOptions]:
    """`/v1/completions` body → native `/api/generate` request, and how to shape the reply."""
    req = unmarshal(CompletionRequest, body)
    options: dict[str, Any] = {}
    stops = _stop_strings(req.stop, strict=True)
    if stops is not None:
        options["stop"] = stops
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    options["temperature"] = 1.0 if req.temperature is None else req.temperature
    if req.seed is not None:
        options["seed"] = req.seed
    # Plain (not pointer) fields in Ollama's struct: always sent, 0 when absent.
    options["frequency_penalty"] = req.frequency_penalty
    options["presence_penalty"] = req.presence_penalty
    # Here 0 cannot be told from absent, so both mean OpenAI's default.
    options["top_p"] = req.top_p or 1.0

    native: dict[str, Any] = {
        "model": req.model,
        "prompt": req.prompt,
        "options": options,
        "stream": req.stream,
    }
    if req.suffix:
        native["suffix"] = req.suffix
    if req.logprobs is not None and req.logprobs > 0:
        native["logprobs"] = True
        native["top_logprobs"] = req.logprobs
    if req.debug_render_only:
        native["_debug_render_only"] = True
    if req.priority is not None:
        native["priority"] = req.priority
    return native, _reply_options(req.stream, req.stream_options)


def embeddings_request(body: Any) -> tuple[dict[str, Any], EmbeddingOptions]:
    """`/v1/embeddings` body → native `/api/embed` request, and what the reply needs."""
    req = unmarshal(EmbedRequest, body)
    if req.encoding_format and req.encoding_format.lower() not in _ENCODING_FORMATS:
        raise invalid(
            f"Invalid value for 'encoding_format' = {req.encoding_format}. "
            "Supported values: ['float', 'base64']."
        )
    text = req.input
    if text == "":
        # One empty input still gets its one (empty-prompt) vector back.
        text = [""]
    if text is None or text == []:
        raise invalid("invalid input")
    native: dict[str, Any] = {"model": req.model, "input": text}
    if req.dimensions:
        native["dimensions"] = req.dimensions
    return native, EmbeddingOptions(model=req.model, encoding_format=req.encoding_format)
