"""Ollama's Anthropic-compatible `POST /v1/messages` as pure translation (Ollama HEAD's
`anthropic/anthropic.go` and `middleware/anthropic.go`).

Like the OpenAI layer (`openai.py`), this is only rewriting over plain JSON values: an Anthropic
Messages body becomes a native `/api/chat` request (`messages_request`), and the native replies
become Anthropic's message object (`message_response`) or its typed server-sent events
(`MessagesStream`). The route (`anthropic_routes.py`) owns the HTTP, the streaming and the clock.

Client mistakes raise `APIError(400, ...)` in Ollama's words; `error_body` puts any `APIError`
into Anthropic's error shape, its type derived from the status as Ollama derives it.

Thinking and tool calls are read from the native message's `thinking` and `tool_calls` and
written to the native request's `think` and `tools`: whatever the chat path parses from the
model's output comes through.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

from trio_ollama.api import compat
from trio_ollama.api.compat import INVALID_REQUEST, each, nested, unmarshal
from trio_ollama.api.errors import APIError
from trio_ollama.api.openai import sse_event
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    FLOAT64,
    INT,
    STRING,
    go_field,
    slice_of,
    struct_type,
)

__all__ = [
    "MessagesOptions",
    "MessagesStream",
    "error_body",
    "error_type",
    "estimate_input_tokens",
    "message_id",
    "message_response",
    "messages_request",
    "stop_reason",
]

# Anthropic's error types, by the HTTP status Ollama answers with.
_ERROR_TYPES: Final = {
    400: INVALID_REQUEST,
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def _invalid(message: str) -> APIError:
    return APIError(400, message)


# --- errors and ids -------------------------------------------------------------------------------


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status (Ollama's `anthropic.NewError`)."""
    return _ERROR_TYPES.get(status, "api_error")


def _id(prefix: str) -> str:
    # Ollama's: 12 random bytes in hex.
    return f"{prefix}_{secrets.token_hex(12)}"


def error_body(status: int, message: str) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    return {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": _id("req"),
    }


def message_id() -> str:
    """`msg_<24 hex digits>`."""
    return _id("msg")


# --- the request, as Ollama's Go structs declare it -----------------------------------------------


@attrs.frozen(kw_only=True)
class ImageSource:
    GO_NAME: ClassVar[str] = "anthropic.ImageSource"

    type: str = go_field(STRING, default="")
    media_type: str = go_field(STRING, default="")
    data: str = go_field(STRING, default="")
    url: str = go_field(STRING, default="")


@attrs.frozen(kw_only=True)
class ContentBlock:
    """One content block of a message; which fields matter depends on `type`. `text` and
    `thinking` are None when absent, as Ollama's pointers are nil."""

    GO_NAME: ClassVar[str] = "anthropic.ContentBlock"

    type: str = go_field(STRING, default="")
    text: str | None = go_field(STRING, default=None)
    source: ImageSource | None = go_field(
        struct_type(ImageSource), default=None, convert=nested(ImageSource)
    )
    id: str = go_field(STRING, default="")
    name: str = go_field(STRING, default="")
    input: dict[str, Any] = go_field(go.TOOL_ARGUMENTS, factory=dict)
    tool_use_id: str = go_field(STRING, default="")
    content: Any = go_field(ANY, default=None)  # a string or a list of blocks
    is_error: bool = go_field(BOOL, default=False)
    thinking: str | None = go_field(STRING, default=None)
    signature: str = go_field(STRING, default="")


_BLOCKS: Final = slice_of(struct_type(ContentBlock))


def _content_blocks(value: Any, path: str) -> tuple[ContentBlock, ...]:
    # Ollama's MessageParam.UnmarshalJSON: a plain string is one text block.
    if isinstance(value, str):
        return (ContentBlock(type="text", text=value),)
    go.check(_BLOCKS, value, "MessageParam", "content")
    return tuple(go.build(ContentBlock, block, f"{path}[{i}]") for i, block in enumerate(value))


@attrs.frozen(kw_only=True)
class MessageParam:
    GO_NAME: ClassVar[str] = "anthropic.MessageParam"

    role: str = go_field(STRING, default="")
    content: tuple[ContentBlock, ...] = go_field(ANY, default=(), convert=_content_blocks)


@attrs.frozen(kw_only=True)
class Tool:
    GO_NAME: ClassVar[str] = "anthropic.Tool"

    type: str = go_field(STRING, default="")
    name: str = go_field(STRING, default="")
    description: str = go_field(STRING, default="")
    # Raw JSON in Ollama (decoded only when the tool is converted), so any value is taken here.
    input_schema: Any = go_field(ANY, default=None)
    max_uses: int = go_field(INT, default=0)


@attrs.frozen(kw_only=True)
class ToolChoice:
    GO_NAME: ClassVar[str] = "anthropic.ToolChoice"

    type: str = go_field(STRING, default="")
    name: str = go_field(STRING, default="")
    disable_parallel_tool_use: bool = go_field(BOOL, default=False)


@attrs.frozen(kw_only=True)
class ThinkingConfig:
    GO_NAME: ClassVar[str] = "anthropic.ThinkingConfig"

    type: str = go_field(STRING, default="")
    budget_tokens: int = go_field(INT, default=0)


@attrs.frozen(kw_only=True)
class OutputConfig:
    GO_NAME: ClassVar[str] = "anthropic.OutputConfig"

    effort: str = go_field(STRING, default="")


def _each_str(values: list[str | None], path: str) -> tuple[str, ...]:
    return tuple(value or "" for value in values)


@attrs.frozen(kw_only=True)
class MessagesRequest:
    """`POST /v1/messages`. Sampling fields are None when absent (the model's own then apply,
    unlike the OpenAI layer's fixed defaults)."""

    GO_NAME: ClassVar[str] = "anthropic.MessagesRequest"

    model: str = go_field(STRING, default="")
    max_tokens: int = go_field(INT, default=0)
    messages: tuple[MessageParam, ...] = go_field(
        slice_of(struct_type(MessageParam)), default=(), convert=each(MessageParam)
    )
    system: Any = go_field(ANY, default=None)  # a string or a list of text blocks
    stream: bool = go_field(BOOL, default=False)
    temperature: float | None = go_field(FLOAT64, default=None)
    top_p: float | None = go_field(FLOAT64, default=None)
    top_k: int | None = go_field(INT, default=None)
    stop_sequences: tuple[str, ...] = go_field(slice_of(STRING), default=(), convert=_each_str)
    tools: tuple[Tool, ...] = go_field(slice_of(struct_type(Tool)), default=(), convert=each(Tool))
    # Accepted and, as in Ollama, not acted on: the chat path has no way to force a tool.
    tool_choice: ToolChoice | None = go_field(
        struct_type(ToolChoice), default=None, convert=nested(ToolChoice)
    )
    thinking: ThinkingConfig | None = go_field(
        struct_type(ThinkingConfig), default=None, convert=nested(ThinkingConfig)
    )
    metadata: Any = go_field(ANY, default=None)
    output_config: OutputConfig | None = go_field(
        struct_type(OutputConfig), default=None, convert=nested(OutputConfig)
    )


@attrs.frozen
class MessagesOptions:
    """What the reply side needs: `stream`, the model as the client named it, the input
    token estimate `message_start` carries (the real count is known only at the end), and
    whether the built-in web search was offered (a call of it is then answered here)."""

    stream: bool = False
    model: str = ""
    estimated_input_tokens: int = 0
    web_search: bool = False


# --- request translation --------------------------------------------------------------------------


def messages_request(body: Any) -> tuple[dict[str, Any], MessagesOptions]:
    """`/v1/messages` body → native `/api/chat` request, and how to shape the reply."""
    req = unmarshal(MessagesRequest, body)
    # Ollama's checks, in its order and words.
    if not req.model:
        raise _invalid("model is required")
    if req.max_tokens <= 0:
        raise _invalid("max_tokens is required and must be positive")
    if not req.messages:
        raise _invalid("messages is required")

    messages = _system(req.system)
    for message in req.messages:
        messages.extend(_message(message))

    options: dict[str, Any] = {"num_predict": req.max_tokens}
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if req.stop_sequences:
        options["stop"] = list(req.stop_sequences)

    native: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "options": options,
        "stream": req.stream,
    }
    web_search = any(_is_web_search(tool) for tool in req.tools)
    # The built-in tool owns the name: a client's own `web_search` beside it is dropped.
    tools = [
        _tool(tool)
        for tool in req.tools
        if _is_web_search(tool) or not (web_search and tool.name == compat.WEB_SEARCH)
    ]
    if tools:
        native["tools"] = tools
    think = _think(req)
    if think is not None:
        native["think"] = think
    estimate = estimate_input_tokens(req)
    return native, MessagesOptions(req.stream, req.model, estimate, web_search)


def _system(system: Any) -> list[dict[str, Any]]:
    # A string, or text blocks joined with nothing between them; anything else is ignored.
    text = ""
    if isinstance(system, str):
        text = system
    elif isinstance(system, list):
        text = "".join(
            block["text"]
            for block in system
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
    return [{"role": "system", "content": text}] if text else []


def _message(msg: MessageParam) -> list[dict[str, Any]]:
    """One Anthropic message → native messages: tool results become `tool` messages of their
    own (before a user's text, so each answers the call just made), the rest one message."""
    role = msg.role.lower()
    text: list[str] = []
    images: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    thinking = ""
    results: list[dict[str, Any]] = []
    for block in msg.content:
        match block.type:
            case "text":
                text.append(block.text or "")
            case "image":
                if block.source is None:
                    raise _invalid("invalid image source")
                images.append(_image(block.source.type, block.source.data))
            case "tool_use":
                if not block.id:
                    raise _invalid("tool_use block missing required 'id' field")
                if not block.name:
                    raise _invalid("tool_use block missing required 'name' field")
                tool_calls.append(
                    {"id": block.id, "function": {"name": block.name, "arguments": block.input}}
                )
            case "tool_result":
                content, result_images = _tool_result(block.content)
                result: dict[str, Any] = {"role": "tool", "content": content}
                if result_images:
                    result["images"] = result_images
                if block.tool_use_id:
                    result["tool_call_id"] = block.tool_use_id
                results.append(result)
            case "thinking":
                if block.thinking is not None:
                    thinking = block.thinking
            case "server_tool_use":  # a past web search: the model's call, as Ollama keeps it
                tool_calls.append(
                    {"id": block.id, "function": {"name": block.name, "arguments": block.input}}
                )
            case "web_search_tool_result":
                searched = {"role": "tool", "content": _web_search_result(block.content)}
                if block.tool_use_id:
                    searched["tool_call_id"] = block.tool_use_id
                results.append(searched)
            # Other block types (redacted thinking, documents) carry nothing the chat path can
            # use; Ollama skips them too.

    out: list[dict[str, Any]] = []
    if role == "user":
        out.extend(results)
    body = "".join(text)
    if body or images or tool_calls or thinking:
        message: dict[str, Any] = {"role": role, "content": body}
        if images:
            message["images"] = images
        if tool_calls:
            message["tool_calls"] = tool_calls
        if thinking:
            message["thinking"] = thinking
        out.append(message)
    if role != "user":
        out.extend(results)
    return out


_SEARCH_ERROR: Final = "web_search_tool_result_error"


def _web_search_result(content: Any) -> str:
    """A past search's results as the model reads them (Ollama's text): a line for each
    result, or the error's code; any other value as JSON (a map's keys sorted, as Go's)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("type") == _SEARCH_ERROR:
        return _search_error(content)
    if not isinstance(content, list):
        return gojson.dumps(dict(sorted(content.items())) if isinstance(content, dict) else content)
    lines = []
    for item in content:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "web_search_result":
            title, url = item.get("title"), item.get("url")
            lines.append(f"- {_str(title)}: {_str(url)}\n")
        elif item.get("type") == _SEARCH_ERROR:
            return _search_error(item)
    return "".join(lines)


def _search_error(error: Mapping[str, Any]) -> str:
    code = error.get("error_code")
    return f"{_SEARCH_ERROR}: {code}" if isinstance(code, str) and code else _SEARCH_ERROR


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _image(source_type: str, data: str) -> str:
    """A base64 image source as the canonical base64 the native API takes."""
    if source_type != "base64":
        raise _invalid(
            f"invalid image source type: {source_type}. Only base64 images are supported."
        )
    return compat.image(data)


def _tool_result(content: Any) -> tuple[str, list[str]]:
    """A tool_result's content: a string, or blocks whose text is joined and whose images are
    kept; any other value is empty, as in Ollama."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    text: list[str] = []
    images: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif block.get("type") == "image":
            source = block.get("source")
            if not isinstance(source, dict):
                raise _invalid("invalid tool_result image source")
            kind, data = source.get("type"), source.get("data")
            images.append(
                _image(kind if isinstance(kind, str) else "", data if isinstance(data, str) else "")
            )
    return "".join(text), images


def _is_web_search(tool: Tool) -> bool:
    # Anthropic's server tool, `web_search_20250305` and its later versions.
    return tool.type.startswith("web_search")


def _tool(tool: Tool) -> dict[str, Any]:
    """An Anthropic tool → a native function tool (`input_schema` is its `parameters`); the
    built-in web search becomes a function the model may call, in Ollama's words."""
    if _is_web_search(tool):
        return compat.web_search_tool(
            "Search the web for current information. "
            "Use this to find up-to-date information about any topic.",
            "The search query to look up on the web",
        )
    schema = tool.input_schema
    if schema is not None and not isinstance(schema, dict):
        kind = go.json_kind(schema)
        raise _invalid(
            f"invalid input_schema for tool {gojson.dumps(tool.name)}: json: cannot unmarshal "
            f"{kind} into Go value of type api.ToolFunctionParameters"
        )
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = schema if schema is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


_EFFORTS: Final = ("high", "medium", "low", "max")


def _think(req: MessagesRequest) -> bool | str | None:
    # `thinking` decides when it says enabled or disabled; otherwise `output_config.effort`.
    if req.thinking is not None and req.thinking.type == "enabled":
        return True
    if req.thinking is not None and req.thinking.type == "disabled":
        return False
    if req.output_config is not None:
        effort = req.output_config.effort.strip().lower()
        effort = "high" if effort == "xhigh" else effort
        if effort in _EFFORTS:
            return effort
    return None


# --- token estimate -------------------------------------------------------------------------------


def estimate_input_tokens(req: MessagesRequest) -> int:
    """Ollama's rough input estimate for `message_start` (the real count comes at the end):
    a quarter of the bytes of the system prompt, roles, texts, thinking, tool blocks and tool
    definitions, at least 1 when there is anything."""
    total = _system_bytes(req.system)
    for msg in req.messages:
        total += len(msg.role.encode())
        total += sum(_block_bytes(block) for block in msg.content)
    for tool in req.tools:
        schema = gojson.dumps(tool.input_schema) if tool.input_schema is not None else ""
        total += len(tool.name.encode()) + len(tool.description.encode()) + len(schema.encode())
    tokens = total // 4
    if tokens == 0 and (req.messages or req.system is not None):
        tokens = 1
    return tokens


def _system_bytes(system: Any) -> int:
    if system is None:
        return 0
    if isinstance(system, str):
        return len(system.encode())
    if isinstance(system, list):
        total = 0
        for block in system:
            if isinstance(block, dict):
                for key in ("text", "thinking"):
                    if isinstance(block.get(key), str):
                        total += len(block[key].encode())
        return total
    return len(gojson.dumps(system).encode())


def _block_bytes(block: ContentBlock) -> int:
    total = len((block.text or "").encode()) + len((block.thinking or "").encode())
    if block.type in ("tool_use", "tool_result"):
        total += len(gojson.dumps(_block_json(block)).encode())
    return total


def _block_json(block: ContentBlock) -> dict[str, Any]:
    # The block as Ollama re-encodes it (omitempty), for the estimate.
    out: dict[str, Any] = {"type": block.type}
    if block.text is not None:
        out["text"] = block.text
    if block.id:
        out["id"] = block.id
    if block.name:
        out["name"] = block.name
    if block.input:
        out["input"] = block.input
    if block.tool_use_id:
        out["tool_use_id"] = block.tool_use_id
    if block.content is not None:
        out["content"] = block.content
    if block.is_error:
        out["is_error"] = True
    return out


# --- replies --------------------------------------------------------------------------------------


def stop_reason(done_reason: str, has_tool_calls: bool) -> str:
    """Ollama's `done_reason` → Anthropic's `stop_reason` ("" when not done)."""
    if has_tool_calls:
        return "tool_use"
    if done_reason == "stop":
        return "end_turn"
    if done_reason == "length":
        return "max_tokens"
    return "stop_sequence" if done_reason else ""


def _usage(native: Mapping[str, Any]) -> dict[str, int]:
    return {
        "input_tokens": int(native.get("prompt_eval_count") or 0),
        "output_tokens": int(native.get("eval_count") or 0),
    }


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "tool_use",
        "id": call.get("id") or "",
        "name": function.get("name") or "",
        "input": function.get("arguments") or {},
    }


def _search_blocks(id: str, query: str) -> list[dict[str, Any]]:
    """The answer to a web search the model asked for, as Ollama answers one that fails:
    the server tool's call and its result, an error (`unavailable`: this server reaches no
    network; `invalid_tool_input` for a call without a query, which Ollama names
    `invalid_request`, a code Anthropic's API does not have)."""
    ident = "srvtoolu_" + id.removeprefix("msg_")
    code = "unavailable" if query else "invalid_tool_input"
    return [
        {"type": "server_tool_use", "id": ident, "name": compat.WEB_SEARCH,
         "input": {"query": query}},
        {"type": "web_search_tool_result", "tool_use_id": ident,
         "content": {"type": _SEARCH_ERROR, "error_code": code}},
    ]  # fmt: skip


def message_response(
    native: Mapping[str, Any], *, id: str, web_search: bool = False
) -> dict[str, Any]:
    """A complete native chat reply → Anthropic's message: thinking, text, then tool_use
    blocks; `stop_reason` is "tool_use" whenever the model called a tool. With `web_search`
    (the built-in tool was offered), a call of it makes the answer that search's failure,
    in place of the rest, as in Ollama."""
    msg = native.get("message") or {}
    calls: Sequence[Mapping[str, Any]] = msg.get("tool_calls") or []
    search = compat.web_search_call(calls) if web_search else None
    if search is not None:
        return {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": native.get("model") or "",
            "content": _search_blocks(id, search[0]),
            "stop_reason": "end_turn",
            "usage": _usage(native),
        }
    content: list[dict[str, Any]] = []
    if msg.get("thinking"):
        # Ollama leaves out the signature; Anthropic's block type requires one, and clients
        # send it back with the block, so it is here, empty (nothing is signed).
        content.append({"type": "thinking", "thinking": msg["thinking"], "signature": ""})
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    content.extend(_tool_use(call) for call in calls)
    out: dict[str, Any] = {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": native.get("model") or "",
        # Ollama sends null for no blocks at all; Anthropic's own API never does, and its
        # clients iterate the list, so an empty answer is [] here.
        "content": content,
    }
    reason = stop_reason(native.get("done_reason") or "", bool(calls))
    if reason:
        out["stop_reason"] = reason
    out["usage"] = _usage(native)
    return out


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return sse_event({"type": kind, **data}, event=kind)


@attrs.define
class MessagesStream:
    """Turns one native `/api/chat` stream into Anthropic's server-sent events.

    Feed each native object to `events` in order and write what it returns. The first object
    opens the message (`message_start`, then a `ping`); thinking, text and each tool call are
    content blocks, opened and closed in order with increasing indexes; the `done` object
    closes the open block and the message (`message_delta` with the stop reason and the final
    usage, then `message_stop`).

    With `web_search`, a call of the built-in web search ends the output: what follows is
    dropped, and the `done` object closes the message with the search's failure as whole
    blocks (`message_response`'s), as Ollama's stream ends when its search fails.
    """

    id: str
    model: str
    estimated_input_tokens: int = 0
    web_search: bool = False
    _search: str | None = None  # the query of a web search the model asked for
    _started: bool = False
    _index: int = 0
    _thinking_open: bool = False
    _thinking_done: bool = False
    _text_open: bool = False
    _tools_sent: set[str] = attrs.Factory(set)
    _any_tool: bool = False

    def events(self, native: Mapping[str, Any]) -> list[bytes]:
        if native.get("error") is not None:
            return [self.error_event(APIError(500, str(native["error"])))]
        out: list[bytes] = []
        if not self._started:
            out.extend(self._start(native))
        msg = native.get("message") or {}
        if self.web_search and self._search is None:
            search = compat.web_search_call(msg.get("tool_calls") or ())
            if search is not None:
                self._search = search[0]
        if self._search is not None:
            if native.get("done"):
                out.extend(self._finish_search(native, self._search))
            return out
        thinking = msg.get("thinking") or ""
        if thinking and not self._thinking_done:
            out.extend(self._thinking(thinking))
        content = msg.get("content") or ""
        if content:
            out.extend(self._text(content))
        for call in msg.get("tool_calls") or ():
            out.extend(self._tool_call(call))
        if native.get("done"):
            out.extend(self._finish(native))
        return out

    def error_event(self, exc: APIError) -> bytes:
        """A failure after the stream began: Anthropic's `error` event, which its clients
        raise."""
        body = error_body(exc.status, exc.message)
        return _event("error", {"error": body["error"]})

    def _start(self, native: Mapping[str, Any]) -> list[bytes]:
        self._started = True
        input_tokens = int(native.get("prompt_eval_count") or 0) or self.estimated_input_tokens
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }
        # Ollama sends no ping; Anthropic sends one here, and its clients expect the type.
        return [_event("message_start", {"message": message}), _event("ping", {})]

    def _stop(self) -> bytes:
        return _event("content_block_stop", {"index": self._index})

    def _open(self, block: dict[str, Any]) -> bytes:
        return _event("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self._index, "delta": delta})

    def _close_thinking(self) -> list[bytes]:
        if not self._thinking_open or self._thinking_done:
            return []
        self._thinking_done = True
        stop = self._stop()
        self._index += 1
        return [stop]

    def _close_text(self) -> list[bytes]:
        if not self._text_open:
            return []
        self._text_open = False
        stop = self._stop()
        self._index += 1
        return [stop]

    def _thinking(self, thinking: str) -> list[bytes]:
        out = self._close_text()
        if not self._thinking_open:
            self._thinking_open = True
            out.append(self._open({"type": "thinking", "thinking": "", "signature": ""}))
        out.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        return out

    def _text(self, content: str) -> list[bytes]:
        out = self._close_thinking()
        if not self._text_open:
            self._text_open = True
            out.append(self._open({"type": "text", "text": ""}))
        out.append(self._delta({"type": "text_delta", "text": content}))
        return out

    def _tool_call(self, call: Mapping[str, Any]) -> list[bytes]:
        ident = call.get("id") or ""
        # A call already sent is not sent twice (Ollama's rule); one without an id cannot be
        # told from another, so each is sent.
        if ident and ident in self._tools_sent:
            return []
        out = self._close_thinking() + self._close_text()
        block = _tool_use(call)
        arguments = gojson.dumps(block["input"])
        out.append(self._open({**block, "input": {}}))
        out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        out.append(self._stop())
        self._tools_sent.add(ident)
        self._any_tool = True
        self._index += 1
        return out

    def _finish_search(self, native: Mapping[str, Any], query: str) -> list[bytes]:
        out: list[bytes] = []
        if self._text_open or (self._thinking_open and not self._thinking_done):
            out.append(self._stop())
            self._index += 1
        for block in _search_blocks(self.id, query):
            out += [self._open(block), self._stop()]
            self._index += 1
        usage = _usage(native)
        out.append(_event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": usage}))
        out.append(_event("message_stop", {}))
        return out

    def _finish(self, native: Mapping[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        if self._text_open or (self._thinking_open and not self._thinking_done):
            out.append(self._stop())
        reason = stop_reason(native.get("done_reason") or "", self._any_tool)
        delta = {"stop_reason": reason} if reason else {}
        out.append(_event("message_delta", {"delta": delta, "usage": _usage(native)}))
        out.append(_event("message_stop", {}))
        return out
