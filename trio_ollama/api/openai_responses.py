"""Ollama's OpenAI Responses API (`POST /v1/responses`) as pure translation (Ollama HEAD's
`openai/responses.go` and `middleware/openai.go` `ResponsesMiddleware`).

The same shape as the rest of the OpenAI layer (`openai.py`): `responses_request` turns the
decoded body into a native `/api/chat` request; `response_object` turns the complete native
reply into a `response` object, and `ResponsesStream` turns a native stream into the typed
events (`response.created`, `response.output_text.delta`, ..., `response.completed`). The route
(`openai_responses_routes.py`) owns the HTTP and the clock. Errors are the OpenAI layer's.

Like Ollama, only the stateless flavour exists: nothing is stored, so `previous_response_id`
and `conversation` are accepted and ignored, and every response says `"store": false` and
`"previous_response_id": null`.

Thinking and tool calls are read from the native message's `thinking` and `tool_calls`; the
request's `reasoning.effort` and `tools` become the native `think` and `tools`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

from trio_ollama.api import compat
from trio_ollama.api.compat import each, invalid, nested, unmarshal
from trio_ollama.api.errors import APIError
from trio_ollama.api.openai import _openai_tool_calls, short_id, sse_event
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    FLOAT64,
    INT,
    MAP_ANY,
    STRING,
    DecodeError,
    go_field,
    pointer_to,
    slice_of,
    struct_type,
)
from trio_ollama.gocompat.encode import GoStruct

__all__ = [
    "ResponsesOptions",
    "ResponsesStream",
    "item_id",
    "response_id",
    "response_object",
    "responses_request",
]

# `[]json.RawMessage` and the type-peeking struct, as Go's errors name them.
_RAW_LIST: Final = slice_of(go.GoType("any", "json.RawMessage"))
_PEEK: Final = 'struct { Type string "json:\\"type\\""; Role string "json:\\"role\\"" }'
_CONTENT_PEEK: Final = 'struct { Type string "json:\\"type\\"" }'


# --- the request, as Ollama's Go structs declare it -----------------------------------------------


@attrs.frozen(kw_only=True)
class Reasoning:
    GO_NAME: ClassVar[str] = "openai.ResponsesReasoning"

    effort: str = go_field(STRING, default="")
    generate_summary: str = go_field(STRING, default="")
    summary: str = go_field(STRING, default="")


@attrs.frozen(kw_only=True)
class TextFormat(GoStruct):
    GO_NAME: ClassVar[str] = "openai.ResponsesTextFormat"

    type: str = go_field(STRING, default="")
    name: str = go_field(STRING, default="", omitempty=True)
    # A `json.RawMessage`: written back as it came.
    schema: Any = go_field(ANY, default=None, omitempty=True)
    strict: bool | None = go_field(pointer_to(BOOL), default=None, omitempty=True)


@attrs.frozen(kw_only=True)
class Text:
    GO_NAME: ClassVar[str] = "openai.ResponsesText"

    format: TextFormat | None = go_field(
        struct_type(TextFormat), default=None, convert=nested(TextFormat)
    )


def _members(values: list[Any], path: str) -> tuple[Tool, ...]:
    # A namespace's member tools: the same struct, checked here (a class cannot name itself
    # in its own declaration).
    go.check(slice_of(struct_type(Tool)), values, "ResponsesTool", "tools")
    return tuple(go.build(Tool, value, f"{path}[{i}]") for i, value in enumerate(values))


@attrs.frozen(kw_only=True)
class Tool(GoStruct):
    """A Responses tool: flat (`name`, `parameters` beside `type`), unlike the chat API's. The
    response echoes it (`go_json`): nullable but required fields are written as null."""

    GO_NAME: ClassVar[str] = "openai.ResponsesTool"

    type: str = go_field(STRING, default="")
    name: str = go_field(STRING, default="")
    description: str | None = go_field(pointer_to(STRING), default=None)
    strict: bool | None = go_field(pointer_to(BOOL), default=None)
    parameters: dict[str, Any] | None = go_field(MAP_ANY, default=None)
    tools: tuple[Tool, ...] = go_field(slice_of(ANY), default=(), convert=_members, omitempty=True)

    def go_json(self) -> dict[str, Any]:
        # A function tool as declared; any other type (Codex's `namespace`, `web_search`,
        # `custom`) with only the fields of its own kind that this server keeps, since OpenAI's
        # types give those no function fields (`name: ""`, `strict: null` would not parse).
        if self.type in ("function", ""):
            return super().go_json()
        out: dict[str, Any] = {"type": self.type}
        if self.type in ("namespace", "custom"):
            out["name"] = self.name
            if self.description is not None or self.type == "namespace":
                out["description"] = self.description or ""
        if self.type == "namespace":
            out["tools"] = [tool.go_json() for tool in self.tools]
        return out


@attrs.frozen(kw_only=True)
class ResponsesRequest:
    """`POST /v1/responses`. `input` stays raw JSON here; `_input_messages` reads it."""

    GO_NAME: ClassVar[str] = "openai.ResponsesRequest"

    model: str = go_field(STRING, default="")
    background: bool = go_field(BOOL, default=False)
    conversation: Any = go_field(ANY, default=None)
    include: tuple[str, ...] = go_field(slice_of(STRING), default=(), convert=lambda v, p: tuple(v))
    input: Any = go_field(ANY, default=None)
    instructions: str = go_field(STRING, default="")
    max_output_tokens: int | None = go_field(INT, default=None)
    reasoning: Reasoning = go_field(
        struct_type(Reasoning), factory=Reasoning, convert=nested(Reasoning)
    )
    temperature: float | None = go_field(FLOAT64, default=None)
    text: Text | None = go_field(struct_type(Text), default=None, convert=nested(Text))
    top_p: float | None = go_field(FLOAT64, default=None)
    truncation: str | None = go_field(STRING, default=None)
    tools: tuple[Tool, ...] = go_field(slice_of(struct_type(Tool)), default=(), convert=each(Tool))
    stream: bool | None = go_field(BOOL, default=None)

    @property
    def text_format(self) -> TextFormat | None:
        return self.text.format if self.text is not None else None

    @property
    def web_search(self) -> bool:
        """Whether the built-in web-search tool is offered (Ollama's `HasWebSearchTool`)."""
        return any(tool.type == _WEB_SEARCH_TYPE for tool in self.tools)


@attrs.frozen
class ResponsesOptions:
    """What the reply side needs: `stream`, and the request itself, which every response
    object echoes (instructions, tools, sampling, text format, reasoning)."""

    stream: bool
    request: ResponsesRequest


# --- request translation --------------------------------------------------------------------------


def responses_request(body: Any) -> tuple[dict[str, Any], ResponsesOptions]:
    """`/v1/responses` body → native `/api/chat` request, and how to shape the reply."""
    req = unmarshal(ResponsesRequest, body)
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages.extend(_input_messages(req.input))

    options: dict[str, Any] = {"temperature": 1.0 if req.temperature is None else req.temperature}
    # Unlike temperature, Ollama leaves top_p to the model when it is not sent.
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.max_output_tokens is not None:
        options["num_predict"] = req.max_output_tokens

    stream = bool(req.stream)
    native: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "options": options,
        "stream": stream,
    }
    tools = _native_tools(req)
    if tools:
        native["tools"] = tools
    fmt = req.text_format
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
        native["format"] = fmt.schema
    think = compat.think_from_effort(req.reasoning.effort)
    if think is not None:
        native["think"] = think
    return native, ResponsesOptions(stream, req)


def _decode_error(where: str, exc: DecodeError | APIError) -> APIError:
    message = exc.message if isinstance(exc, APIError) else str(exc)
    return invalid(f"{where}: {message}")


def _input_messages(value: Any) -> list[dict[str, Any]]:
    """`input`: a string is one user message; a list holds typed items, in order."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}] if value else []
    if not isinstance(value, list):
        raise invalid(f"input must be a string or array: {go.type_error(_RAW_LIST, value)}")
    items: list[Any] = []
    for i, raw in enumerate(value):
        try:
            items.append(_input_item(raw))
        except (DecodeError, APIError) as exc:
            raise _decode_error(f"input[{i}]", exc) from None
    return _conversation(items)


@attrs.frozen
class _Message:
    role: str
    content: list[Any]  # of `_content` parts


@attrs.frozen
class _FunctionCall:
    call_id: str
    name: str
    arguments: str


@attrs.frozen
class _FunctionOutput:
    call_id: str
    output: str
    parts: list[Any] | None


@attrs.frozen
class _Reasoning:
    encrypted_content: str


@attrs.frozen
class _Skipped:
    """An item that is history only (a past built-in web search)."""


def _string(value: Any, go_name: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise go.type_error(STRING, value, go_name, field)
    return value


def _input_item(raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise go.type_error(go.GoType("struct", _PEEK), raw)
    kind = _string(raw.get("type"), "", "type")
    role = _string(raw.get("role"), "", "role")
    if not kind and role:
        kind = "message"  # the shorthand `{"role": ..., "content": ...}`
    match kind:
        case "message":
            return _Message(role, _content_parts(raw.get("content")))
        case "function_call":
            return _FunctionCall(
                _string(raw.get("call_id"), "ResponsesFunctionCall", "call_id"),
                _string(raw.get("name"), "ResponsesFunctionCall", "name"),
                _string(raw.get("arguments"), "ResponsesFunctionCall", "arguments"),
            )
        case "function_call_output":
            call_id = _string(raw.get("call_id"), "", "call_id")
            output = raw.get("output")
            if output is None or isinstance(output, str):
                return _FunctionOutput(call_id, output or "", None)
            if not isinstance(output, list):
                error = go.type_error(_RAW_LIST, output)
                raise DecodeError(f"output must be a string or array: {error}")
            parts = _parts(output, "output")
            text = "".join(part["text"] for part in parts if part["type"] in _TEXT_PARTS)
            return _FunctionOutput(call_id, text, parts)
        case "reasoning":
            content = _string(
                raw.get("encrypted_content"), "ResponsesReasoningInput", "encrypted_content"
            )
            return _Reasoning(content)
        case "web_search_call":
            return _Skipped()
        case "":
            raise DecodeError("input item missing required 'type' field")
    raise DecodeError(f'unknown input item type: "{kind}"')


_TEXT_PARTS: Final = ("input_text", "output_text")
_PART_TYPES: Final = (*_TEXT_PARTS, "input_image", "input_file")


def _content_parts(content: Any) -> list[Any]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    if not isinstance(content, list):
        error = go.type_error(_RAW_LIST, content)
        raise DecodeError(f"content must be a string or array: {error}")
    return _parts(content, "content")


def _parts(values: list[Any], name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(values):
        if not isinstance(part, dict):
            error = go.type_error(go.GoType("struct", _CONTENT_PEEK), part)
            raise DecodeError(f"{name}[{i}]: {error}")
        kind = part.get("type")
        if kind not in _PART_TYPES:
            shown = kind if isinstance(kind, str) else ""
            raise DecodeError(f"{name}[{i}]: unknown content type: {shown}")
        for key in ("text", "image_url", "file_data", "file_id", "detail"):
            if part.get(key) is not None and not isinstance(part[key], str):
                error = go.type_error(STRING, part[key], "", key)
                raise DecodeError(f"{name}[{i}]: {error}")
        out.append(part)
    return out


def _content(parts: Sequence[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """Text parts joined, images decoded; files are refused, as in Ollama."""
    text: list[str] = []
    images: list[str] = []
    for part in parts:
        kind = part["type"]
        if kind in _TEXT_PARTS:
            text.append(part.get("text") or "")
        elif kind == "input_image":
            url = part.get("image_url") or ""
            if url:  # a file_id alone names an upload this server never had
                images.append(compat.image(url, data_url=True))
        else:
            raise invalid("file inputs are not currently supported")
    return "".join(text), images


def _native_message(role: str, content: str, images: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": content}
    if images:
        message["images"] = images
    return message


def _conversation(items: Sequence[Any]) -> list[dict[str, Any]]:
    """Input items → native messages (Ollama's `FromResponsesRequest`): function calls join the
    assistant message before them, a reasoning item's text becomes the next assistant
    message's thinking, and an assistant message replayed between a call and its output is
    folded into the call's message, so the output still follows its call."""
    messages: list[dict[str, Any]] = []
    pending = ""  # reasoning waiting for its assistant message
    for i, item in enumerate(items):
        if isinstance(item, _Reasoning):
            pending = item.encrypted_content
        elif isinstance(item, _Message):
            # The native API knows no "developer": it is OpenAI's newer name for system.
            role = "system" if item.role.lower() == "developer" else item.role
            content, images = _content(item.content)
            message = _native_message(role, content, images)
            if role == "assistant" and pending:
                message["thinking"], pending = pending, ""
            following = items[i + 1] if i + 1 < len(items) else None
            if (
                role == "assistant"
                and isinstance(following, _FunctionOutput)
                and following.call_id
                and _fold(messages, message, following.call_id)
            ):
                continue
            messages.append(message)
        elif isinstance(item, _FunctionCall):
            call = {
                "id": item.call_id,
                "function": {"name": item.name, "arguments": _arguments(item.arguments)},
            }
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            if pending:
                messages[-1]["thinking"], pending = pending, ""
        elif isinstance(item, _FunctionOutput):
            content, images = item.output, []
            if item.parts:
                content, images = _content(item.parts)
            tool = _native_message("tool", content, images)
            if item.call_id:
                tool["tool_call_id"] = item.call_id
            messages.append(tool)
    if pending:
        messages.append({"role": "assistant", "content": "", "thinking": pending})
    return messages


def _fold(messages: list[dict[str, Any]], message: dict[str, Any], call_id: str) -> bool:
    if not messages:
        return False
    last = messages[-1]
    calls = last.get("tool_calls") or []
    if last["role"] != "assistant" or not any(call.get("id") == call_id for call in calls):
        return False
    if last["content"] and message["content"]:
        last["content"] += "\n"
    last["content"] += message["content"]
    if message.get("images"):
        last.setdefault("images", []).extend(message["images"])
    if message.get("thinking"):
        last["thinking"] = message["thinking"]
    return True


def _arguments(text: str) -> dict[str, Any]:
    if not text:
        return {}  # Ollama decodes none
    return compat.tool_arguments(text, failure="failed to parse function call arguments: {error}")


_WEB_SEARCH_TYPE: Final = "web_search"


def _native_tools(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's tools as native function tools. The built-in web search is a function
    the model may call (in Ollama's words for this API), and owns its name: a client's
    function called `web_search` is dropped beside it."""
    tools: list[dict[str, Any]] = []
    for tool in req.tools:
        if tool.type == _WEB_SEARCH_TYPE:
            tools.append(
                compat.web_search_tool(
                    "Search the web for current information.", "The search query."
                )
            )
            continue
        tools.extend(
            native
            for native in _tools(tool)
            if not (req.web_search and native["function"]["name"] == compat.WEB_SEARCH)
        )
    return tools


def _tools(tool: Tool) -> list[dict[str, Any]]:
    """A Responses tool → native function tools; a namespace's members get its name as a
    prefix (`ns.member`), since a native tool has only a flat name. Any other type (Codex's
    `custom`, `local_shell`, ...) goes on as a function of its own type, as in Ollama."""
    if tool.type != "namespace":
        function: dict[str, Any] = {"name": tool.name, "description": tool.description or ""}
        if tool.parameters is not None:
            function["parameters"] = tool.parameters
        return [{"type": tool.type, "function": function}]
    out: list[dict[str, Any]] = []
    prefix = tool.name + "."
    for member in tool.tools:
        for native in _tools(member):
            name = native["function"]["name"]
            if tool.name and not name.startswith(prefix):
                native["function"]["name"] = prefix + name
            out.append(native)
    return out


# --- replies --------------------------------------------------------------------------------------


# Ollama's Responses ids are drawn below this, where its chat ids are below 999.
_ID_BOUND: Final = 999999


def response_id(rng: random.Random | None = None) -> str:
    """`resp_<0..999998>`, as short as Ollama's."""
    return short_id("resp_", _ID_BOUND, rng)


def item_id(rng: random.Random | None = None) -> str:
    """`msg_<0..999998>`: the id of the response's message item."""
    return short_id("msg_", _ID_BOUND, rng)


def _usage(native: Mapping[str, Any]) -> dict[str, Any]:
    prompt = int(native.get("prompt_eval_count") or 0)
    completion = int(native.get("eval_count") or 0)
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
        # Ollama sends only cached_tokens; OpenAI's current type requires the other too.
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ident: str, text: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [_text_part(text)],
    }


def _reasoning_item(ident: str, thinking: str) -> dict[str, Any]:
    # The thinking goes back to the client as its "encrypted" content, so that sending the
    # item back in the next request's input restores it.
    return {
        "id": ident,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": thinking}],
        "encrypted_content": thinking,
    }


def _function_call_item(ident: str, call: Mapping[str, Any], status: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"],
    }


def _envelope(
    request: ResponsesRequest,
    *,
    id: str,
    created: int,
    completed: int | None,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    """The response object around `output`: mostly the request's settings, echoed."""
    fmt = request.text_format
    reasoning: dict[str, Any] | None = None
    if request.reasoning.effort or request.reasoning.summary:
        reasoning = {
            "effort": request.reasoning.effort or None,
            "summary": request.reasoning.summary or None,
        }
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "completed_at": completed,
        "status": status,
        "incomplete_details": None,
        "model": request.model,
        "previous_response_id": None,
        "instructions": request.instructions or None,
        "output": output,
        "error": None,
        "tools": [tool.go_json() for tool in request.tools],
        "tool_choice": "auto",
        "truncation": request.truncation if request.truncation is not None else "disabled",
        "parallel_tool_calls": True,
        "text": {"format": fmt.go_json() if fmt is not None else {"type": "text"}},
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "top_logprobs": 0,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "reasoning": reasoning,
        "usage": usage,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "store": False,
        "background": request.background,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def response_object(
    native: Mapping[str, Any],
    request: ResponsesRequest,
    *,
    id: str,
    item: str,
    created: int,
    completed: int,
) -> dict[str, Any]:
    """A complete native chat reply → a `response` object. Output: a reasoning item if the
    model thought, then its function calls if it made any, else one message (even empty).
    A web search the model asked for is Ollama's failed search: a 502."""
    msg = native.get("message") or {}
    if request.web_search:
        search = compat.web_search_call(msg.get("tool_calls") or ())
        if search is not None:
            raise APIError(502, _search_failure(search[0]))
    output: list[dict[str, Any]] = []
    if msg.get("thinking"):
        output.append(_reasoning_item(f"rs_{id}", msg["thinking"]))
    calls = _openai_tool_calls(msg.get("tool_calls") or [])
    if calls:
        output.extend(
            _function_call_item(f"fc_{id}_{i}", call, "completed") for i, call in enumerate(calls)
        )
    else:
        output.append(_message_item(item, msg.get("content") or ""))
    return _envelope(
        request,
        id=id,
        created=created,
        completed=completed,
        status="completed",
        output=output,
        usage=_usage(native),
    )


def _search_failure(query: str) -> str:
    # Ollama's order: a call without a query fails before any search is tried.
    return compat.NO_QUERY if not query.strip() else compat.NO_WEB_SEARCH


@attrs.define
class ResponsesStream:
    """Turns one native `/api/chat` stream into the Responses API's typed events.

    Feed each native object to `events` in order and write what it returns. The first object
    opens the response (`response.created`, `response.in_progress`); thinking is a reasoning
    item, each tool call a function_call item, text one message item (not sent once a tool
    call went out, as in Ollama); the `done` object closes them and ends with
    `response.completed`, which holds every item. Each event has its `sequence_number`.
    `created` and `completed` are the caller's clock readings (unix seconds).

    A call of the built-in web search is held back (the rest streams on); at the end the
    search is begun as Ollama begins it (a `web_search_call` item, `searching`) and fails:
    the item ends `failed` and the response with `response.failed`, where Ollama's stream ends
    when its search fails.
    """

    request: ResponsesRequest
    id: str
    item: str
    created: int
    rng: random.Random | None = None
    _sequence: int = 0
    _output_index: int = 0
    _started: bool = False
    _items: list[dict[str, Any]] = attrs.Factory(list)
    _reasoning_id: str = ""
    _thinking: str = ""
    _text_started: bool = False
    _text: str = ""
    _tool_calls_sent: bool = False
    _search: str | None = None  # the query of a web search the model asked for

    def events(self, native: Mapping[str, Any], completed: int | None = None) -> list[bytes]:
        if native.get("error") is not None:
            return [self.error_event(APIError(500, str(native["error"])))]
        out: list[bytes] = []
        if not self._started:
            self._started = True
            for kind in ("response.created", "response.in_progress"):
                out.append(self._event(kind, response=self._response("in_progress", [], None)))
        msg = native.get("message") or {}
        if msg.get("thinking"):
            out.extend(self._reasoning(msg["thinking"]))
        calls = msg.get("tool_calls") or []
        if self.request.web_search and (search := compat.web_search_call(calls)) is not None:
            if self._search is None:
                self._search = search[0]
            calls = [call for call in calls if call is not search[1]]
        if calls:
            out.extend(self._finish_reasoning())
            out.extend(self._function_calls(calls))
            self._tool_calls_sent = True
        elif not self._tool_calls_sent and msg.get("content"):
            out.extend(self._finish_reasoning())
            out.extend(self._text_delta(msg["content"]))
        if native.get("done"):
            if self._search is not None:
                out.extend(self._fail_search(native, self._search))
            else:
                out.extend(self._complete(native, completed))
        return out

    def error_event(self, exc: APIError) -> bytes:
        """A failure after the stream began: the Responses API's `error` event."""
        return self._event("error", code=None, message=exc.message, param=None)

    def _event(self, kind: str, **data: Any) -> bytes:
        body = {"type": kind, "sequence_number": self._sequence, **data}
        self._sequence += 1
        return sse_event(body, event=kind)

    def _response(
        self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        return _envelope(
            self.request,
            id=self.id,
            created=self.created,
            completed=None,
            status=status,
            output=output,
            usage=usage,
        )

    def _reasoning(self, thinking: str) -> list[bytes]:
        out: list[bytes] = []
        if not self._reasoning_id:
            self._reasoning_id = short_id("rs_", _ID_BOUND, self.rng)
            item = {"id": self._reasoning_id, "type": "reasoning", "summary": []}
            out.append(
                self._event(
                    "response.output_item.added", output_index=self._output_index, item=item
                )
            )
        self._thinking += thinking
        out.append(
            self._event(
                "response.reasoning_summary_text.delta",
                item_id=self._reasoning_id,
                output_index=self._output_index,
                summary_index=0,
                delta=thinking,
            )
        )
        return out

    def _finish_reasoning(self) -> list[bytes]:
        if not self._reasoning_id:
            return []
        item = _reasoning_item(self._reasoning_id, self._thinking)
        self._items.append(item)
        index = self._output_index
        out = [
            self._event(
                "response.reasoning_summary_text.done",
                item_id=self._reasoning_id,
                output_index=index,
                summary_index=0,
                text=self._thinking,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]
        self._reasoning_id, self._thinking = "", ""
        self._output_index += 1
        return out

    def _function_calls(self, native_calls: Sequence[Mapping[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        calls = _openai_tool_calls(native_calls)
        for i, call in enumerate(calls):
            index = self._output_index + i
            ident = f"{short_id('fc_', _ID_BOUND, self.rng)}_{i}"
            item = _function_call_item(ident, call, "completed")
            self._items.append(item)
            arguments = call["function"]["arguments"]
            added = {**_function_call_item(ident, call, "in_progress"), "arguments": ""}
            out += [
                self._event("response.output_item.added", output_index=index, item=added),
                self._event("response.function_call_arguments.delta", item_id=ident,
                            output_index=index, delta=arguments),
                self._event("response.function_call_arguments.done", item_id=ident,
                            output_index=index, arguments=arguments),
                self._event("response.output_item.done", output_index=index, item=item),
            ]  # fmt: skip
        self._output_index += len(calls)
        return out

    def _text_delta(self, content: str) -> list[bytes]:
        out: list[bytes] = []
        index = self._output_index
        if not self._text_started:
            self._text_started = True
            added = {"id": self.item, "type": "message", "status": "in_progress",
                     "role": "assistant", "content": []}  # fmt: skip
            out += [
                self._event("response.output_item.added", output_index=index, item=added),
                self._event("response.content_part.added", item_id=self.item,
                            output_index=index, content_index=0, part=_text_part("")),
            ]  # fmt: skip
        self._text += content
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=self.item,
                output_index=index,
                content_index=0,
                delta=content,
                logprobs=[],
            )
        )
        return out

    def _finish_text(self) -> list[bytes]:
        """Close the message item, if one began; no events for it once a tool call went out
        (Ollama sends none then either)."""
        if not self._text_started:
            return []
        index, text = self._output_index, self._text
        item = _message_item(self.item, text)
        self._items.append(item)
        self._text_started = False
        self._output_index += 1
        if self._tool_calls_sent:
            return []
        return [
            self._event("response.output_text.done", item_id=self.item,
                        output_index=index, content_index=0, text=text, logprobs=[]),
            self._event("response.content_part.done", item_id=self.item,
                        output_index=index, content_index=0, part=_text_part(text)),
            self._event("response.output_item.done", output_index=index, item=item),
        ]  # fmt: skip

    def _complete(self, native: Mapping[str, Any], completed: int | None) -> list[bytes]:
        out = self._finish_reasoning() + self._finish_text()
        response = self._response("completed", list(self._items), _usage(native))
        response["completed_at"] = completed
        out.append(self._event("response.completed", response=response))
        return out

    def _fail_search(self, native: Mapping[str, Any], query: str) -> list[bytes]:
        out = self._finish_reasoning() + self._finish_text()
        if query.strip():
            index = self._output_index
            ident = f"ws_{self.id.removeprefix('resp_')}_1"
            action = {"type": "search", "query": query}
            added = {"id": ident, "type": "web_search_call", "status": "in_progress",
                     "action": action}  # fmt: skip
            item = {**added, "status": "failed"}
            self._items.append(item)
            self._output_index += 1
            out += [
                self._event("response.output_item.added", output_index=index, item=added),
                self._event("response.web_search_call.in_progress", item_id=ident,
                            output_index=index),
                self._event("response.web_search_call.searching", item_id=ident,
                            output_index=index),
                self._event("response.output_item.done", output_index=index, item=item),
            ]  # fmt: skip
        response = self._response("failed", list(self._items), _usage(native))
        # Ollama's code here is "api_error", which OpenAI's `ResponseError` does not have.
        response["error"] = {"code": "server_error", "message": _search_failure(query)}
        out.append(self._event("response.failed", response=response))
        return out
