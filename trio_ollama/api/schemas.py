"""Request bodies of the native Ollama API, parsed and checked before a handler sees them.

Ollama decodes bodies with Go's `encoding/json` into typed structs: a wrong type is a 400 whose
text names the struct field, and several malformed values (an unknown `format`, an option of the
wrong type) only fail later, as a 500. Here every malformed value is a 400 raised while parsing,
with Ollama's own text where Ollama has one (reference §1.2–1.16, §2.5) and a message naming the
field otherwise, so a 500 from the server always means a bug.

Everything here is pure: bytes or dicts in, frozen attrs objects out, `APIError` for the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import attrs

from trio_ollama.api.errors import APIError
from trio_ollama.durations import SECOND, DurationError, parse_go_duration_ns
from trio_ollama.gojson import quote as go_quote
from trio_ollama.options import (
    DEPRECATED_OPTIONS,
    OPTION_KINDS,
    OptionError,
    check_option_value,
    format_params,
)
from trio_ollama.store.create import is_valid_relative_path
from trio_ollama.store.layout import DIGEST_RE
from trio_ollama.store.modelfile import MESSAGE_ROLES, CreateRequest, Message

log = logging.getLogger(__name__)

__all__ = [
    "CHAT_ROLES",
    "THINK_LEVELS",
    "ChatMessage",
    "ChatRequest",
    "CopyRequest",
    "CreateJSON",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "Fields",
    "GenerateRequest",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
    "ToolCall",
    "ToolCallFunction",
    "decode_request",
    "go_quote",
    "json_kind",
    "parse_body",
    "parse_format",
    "parse_images",
    "parse_keep_alive",
    "parse_options",
    "parse_think",
    "type_error",
]

CHAT_ROLES = ("system", "user", "assistant", "tool")
THINK_LEVELS = ("high", "medium", "low")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The runner hands these options to llama.cpp as C `int`s; beyond that they would wrap around.
_INT32_MAX = 2**31 - 1
# Ollama keeps float options as float32: anything larger becomes +Inf on the way to the runner.
_FLOAT32_MAX = 3.4028234663852886e38

# Lower bounds for integer options; -1 / -2 are Ollama's "auto" / "infinite" / "fill" sentinels.
_INT_MINIMUM = {
    "num_ctx": 1,
    "num_batch": 1,
    "num_gpu": -1,
    "main_gpu": 0,
    "num_thread": 0,
    "num_keep": -1,
    "num_predict": -2,
    "top_k": 0,
    "repeat_last_n": -1,
}
_UNIT_INTERVAL = frozenset({"top_p", "min_p", "typical_p"})
_NON_NEGATIVE = frozenset({"temperature"})

_THINK_LEVELS_TEXT = '"high", "medium", "low", true, or false'
_ROLE_TEXT = 'must be one of "system", "user", "assistant", or "tool"'
_MESSAGE_ROLE_TEXT = 'message role must be one of "system", "user", or "assistant"'
_SURROGATE = re.compile("[\ud800-\udfff]")
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


# --- helpers for messages --------------------------------------------------------------------


def json_kind(value: Any) -> str:
    """The JSON kind Go's `UnmarshalTypeError` names: string, number, bool, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def _number_text(value: int | float) -> str:
    return json.dumps(value)


def type_error(path: str, value: Any, go_type: str) -> APIError:
    """Go's type-mismatch text; `path` is `Struct.field` (with `[i]` for list items)."""
    kind = json_kind(value)
    # Go names the literal when a number does not fit a numeric field (`number 1.5`).
    if kind == "number" and go_type in ("int", "[]int", "uint"):
        kind = f"number {_number_text(value)}"
    return APIError(
        400, f"json: cannot unmarshal {kind} into Go struct field {path} of type {go_type}"
    )


# --- the body ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _clean_strings(value: Any) -> Any:
    # JSON may carry lone UTF-16 surrogates (`"\ud800"`); Python keeps them and then fails to
    # encode the text as UTF-8 much later. Go replaces them with U+FFFD while decoding.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, list):
        return [_clean_strings(v) for v in value]
    if isinstance(value, dict):
        return {_clean_strings(k): _clean_strings(v) for k, v in value.items()}
    return value


def parse_body(raw: bytes, struct: str = "") -> dict[str, Any]:
    """Decode a request body to a JSON object.

    Empty (or all-whitespace) is Ollama's `missing request body`; `null` is an empty object, as
    Go decodes it into a zero struct. `struct` (e.g. "ChatRequest") only shapes the message for a
    body that is not an object.
    """
    if not raw.strip(b" \t\r\n"):
        raise APIError(400, "missing request body")
    # Go reads invalid UTF-8 inside strings as U+FFFD instead of failing; so do we.
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        value = _clean_strings(value)
    except json.JSONDecodeError as e:
        raise APIError(
            400, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos})"
        ) from None
    except RecursionError:
        raise APIError(400, "invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise APIError(400, f"invalid JSON: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = json_kind(value)
        if struct:
            raise APIError(400, f"json: cannot unmarshal {kind} into Go value of type api.{struct}")
        raise APIError(400, f"request body must be a JSON object, not {kind}")
    return value


class _FromJSON(Protocol):
    GO_NAME: ClassVar[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any: ...


T = TypeVar("T", bound=_FromJSON)


def decode_request(cls: type[T], raw: bytes) -> T:
    """`parse_body` then `cls.from_json`: the whole decoding step of a handler."""
    result: T = cls.from_json(parse_body(raw, cls.GO_NAME))
    return result


# --- typed field access -----------------------------------------------------------------------


class Fields:
    """Typed reads of one JSON object; errors are Go's, naming `<where>.<key>`.

    `null` reads as the default everywhere, because Go leaves a field at its zero value (or a
    pointer at nil) for `null`.
    """

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise type_error(self.path(key), value, "string")
        return value

    def optional_string(self, key: str) -> str | None:
        """A string override where Ollama treats `""` as "not given" (system, template)."""
        return self.string(key) or None

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise type_error(self.path(key), value, "bool")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        return _int_value(value, self.path(key), "int")

    def number(self, key: str, default: float = 0.0) -> float:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise type_error(self.path(key), value, "float64")
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise APIError(400, f"invalid {self.path(key)}: must be a finite number")
        return result

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise type_error(self.path(key), value, "[]string")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise type_error(f"{self.path(key)}[{i}]", item, "string")
        return tuple(value)

    def ints(self, key: str) -> tuple[int, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise type_error(self.path(key), value, "[]int")
        return tuple(_int_value(v, f"{self.path(key)}[{i}]", "int") for i, v in enumerate(value))

    def object(self, key: str, go_type: str = "map[string]interface {}") -> dict[str, Any] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise type_error(self.path(key), value, go_type)
        return value

    def objects(self, key: str, go_type: str) -> list[dict[str, Any]]:
        """A list of objects; `go_type` is the element's Go type, for the message."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise type_error(self.path(key), value, f"[]{go_type}")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise type_error(f"{self.path(key)}[{i}]", item, go_type)
        return value

    def string_map(self, key: str) -> dict[str, str]:
        obj = self.object(key, "map[string]string")
        if obj is None:
            return {}
        for name, item in obj.items():
            if not isinstance(item, str):
                raise type_error(f"{self.path(key)}[{go_quote(name)}]", item, "string")
        return dict(obj)


def _int_value(value: Any, path: str, go_type: str) -> int:
    # Go's decoder parses the literal as an integer: `1.0`, `1e3` and `true` are all errors.
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(path, value, go_type)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise type_error(path, value, go_type)
    return value


# --- shared field parsers ---------------------------------------------------------------------


def parse_keep_alive(value: Any) -> float | None:
    """`keep_alive` (reference §1.13) in seconds: None when absent, `math.inf` for forever.

    A number is seconds; a string is a Go duration; anything negative means forever.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise APIError(400, "Unsupported type: 'bool'")
    if isinstance(value, int | float):
        if value < 0:
            return math.inf
        seconds = float(value)
        # Go converts to int64 nanoseconds; a value past that is "forever" in any practical sense.
        if seconds * SECOND >= _INT64_MAX:
            return math.inf
        return seconds + 0.0  # normalises -0.0
    if isinstance(value, str):
        try:
            ns = parse_go_duration_ns(value)
        except DurationError as e:
            raise APIError(400, str(e)) from None
        return math.inf if ns < 0 else ns / SECOND
    go_type = "[]interface {}" if isinstance(value, list) else "map[string]interface {}"
    raise APIError(400, f"Unsupported type: '{go_type}'")


def parse_think(value: Any) -> bool | str | None:
    """`think`: a bool, a level string, or None when absent (Ollama's `ThinkValue`)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value not in THINK_LEVELS:
            raise APIError(
                400, f"invalid think value: {go_quote(value)} (must be {_THINK_LEVELS_TEXT})"
            )
        return value
    raise APIError(400, f"think must be a boolean or string ({_THINK_LEVELS_TEXT})")


def parse_format(value: Any) -> str:
    """`format`: "" (none), "json", or a JSON schema as compact JSON text.

    Ollama checks this only when it reaches the runner and answers 500; the text is its own.
    """
    if value is None or value == "":
        return ""
    if value == "json":
        return "json"
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, dict):
        return compact
    raise APIError(
        400, f'invalid format: {go_quote(compact)}; expected "json" or a valid JSON Schema object'
    )


def _base64_error_offset(text: str) -> int:
    for i, ch in enumerate(text):
        if ch not in _B64_ALPHABET and ch != "=":
            return i
    return len(text)


def parse_images(value: Any, path: str) -> tuple[bytes, ...]:
    """`images`: base64 strings (Go's `[]byte` encoding) decoded to bytes.

    An empty image is refused: no runner can use it, and it would fail much later.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        raise type_error(path, value, "[]api.ImageData")
    images = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise type_error(where, item, "api.ImageData")
        # Go's base64 decoder skips line breaks, as MIME-wrapped base64 has them.
        text = item.replace("\r", "").replace("\n", "")
        if not text:
            raise APIError(400, f"invalid image in {where}: empty")
        try:
            images.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            offset = _base64_error_offset(text)
            raise APIError(
                400, f"invalid image in {where}: illegal base64 data at input byte {offset}"
            ) from None
    return tuple(images)


def _shown(value: int) -> str:
    # A client can send a 4,000-digit number; the message need not echo all of it.
    text = str(value)
    return text if len(text) <= 24 else text[:20] + "..."


def _option_error(key: str, text: str) -> APIError:
    return APIError(400, f'option "{key}" {text}')


def _check_option(key: str, value: Any) -> Any:
    """One known option: Ollama's type check, then ranges that keep the runner sane."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _option_error(key, "must be a finite number")
    try:
        checked = check_option_value(key, value)
    except OptionError as e:
        raise APIError(400, str(e)) from None
    except (OverflowError, ValueError):
        raise _option_error(key, "is out of range") from None
    kind = OPTION_KINDS[key]
    if kind == "int":
        assert isinstance(checked, int)
        top = _INT64_MAX if key == "seed" else _INT32_MAX
        bottom = _INT_MINIMUM.get(key, _INT64_MIN)
        if checked < bottom:
            raise _option_error(key, f"must be >= {bottom}, got {_shown(checked)}")
        if checked > top:
            raise _option_error(key, f"must be <= {top}, got {_shown(checked)}")
    elif kind == "float":
        assert isinstance(checked, float)
        if not math.isfinite(checked) or abs(checked) > _FLOAT32_MAX:
            raise _option_error(key, "must be a finite number")
        if key in _UNIT_INTERVAL and not 0.0 <= checked <= 1.0:
            raise _option_error(key, f"must be between 0 and 1, got {checked:g}")
        if key in _NON_NEGATIVE and checked < 0.0:
            raise _option_error(key, f"must be >= 0, got {checked:g}")
    return checked


def parse_options(value: Any, field: str = "options") -> dict[str, Any]:
    """`options` (reference §1.14): only the keys given, type-checked and range-checked.

    Unknown keys are logged and ignored and deprecated ones ignored, as Ollama does; `null`
    values are skipped (Go's `FromMap` does the same). `field` names the field in messages.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise type_error(field, value, "map[string]interface {}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in DEPRECATED_OPTIONS:
            log.debug("ignoring deprecated option %s", key)
            continue
        if key not in OPTION_KINDS:
            log.warning("invalid option provided: %s", key)
            continue
        if item is None:
            continue
        out[key] = _check_option(key, item)
    return out


def _parameters(value: dict[str, Any] | None, path: str) -> dict[str, Any]:
    """`/api/create` parameters, stored in the params layer: typed like options, strictly.

    Unlike request options an unknown name is an error (as `PARAMETER` is in a Modelfile), and
    Modelfile-style strings ("0.7", "true") are converted, so clients that pass the text through
    get the same result as `ollama create`.
    """
    if not value:
        return {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in DEPRECATED_OPTIONS:
            log.warning("parameter %s is deprecated", key)
            continue
        if key not in OPTION_KINDS:
            raise APIError(400, f"unknown parameter '{key}'")
        if item is None:
            continue
        if isinstance(item, str) and OPTION_KINDS[key] != "strings":
            try:
                item = format_params({key: [item]})[key]
            except OptionError as e:
                raise APIError(400, f"{path}[{go_quote(key)}]: {e}") from None
        out[key] = _check_option(key, item)
    return out


# --- requests ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GenerateRequest:
    """`POST /api/generate` (reference §1.3). `system`/`template` are None unless non-empty."""

    GO_NAME: ClassVar[str] = "GenerateRequest"

    model: str = ""
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: tuple[int, ...] | None = None
    stream: bool = True
    raw: bool = False
    format: str = ""
    keep_alive: float | None = None
    images: tuple[bytes, ...] = ()
    options: dict[str, Any] = attrs.field(factory=dict)
    think: bool | str | None = None
    truncate: bool = True
    shift: bool = True
    debug_render_only: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerateRequest:
        f = Fields(data, cls.GO_NAME)
        context = f.ints("context")
        if context is not None:
            for i, token in enumerate(context):
                # Token ids go straight to the tokenizer; a negative or huge one can crash it.
                if not 0 <= token <= _INT32_MAX:
                    raise APIError(400, f"invalid token id {token} in context[{i}]")
        return cls(
            model=f.string("model"),
            prompt=f.string("prompt"),
            suffix=f.string("suffix"),
            system=f.optional_string("system"),
            template=f.optional_string("template"),
            context=context,
            stream=f.boolean("stream", True),
            raw=f.boolean("raw"),
            format=parse_format(f.get("format")),
            keep_alive=parse_keep_alive(f.get("keep_alive")),
            images=parse_images(f.get("images"), f.path("images")),
            options=parse_options(f.get("options"), f.path("options")),
            think=parse_think(f.get("think")),
            truncate=f.boolean("truncate", True),
            shift=f.boolean("shift", True),
            debug_render_only=f.boolean("_debug_render_only"),
        )


@attrs.frozen(kw_only=True)
class ToolCallFunction:
    index: int = 0
    name: str = ""
    arguments: dict[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "arguments": self.arguments}


@attrs.frozen(kw_only=True)
class ToolCall:
    """`{"id"?, "function": {"index", "name", "arguments": {...}}}`; `id` "" is omitted."""

    id: str = ""
    function: ToolCallFunction = attrs.field(factory=ToolCallFunction)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "ToolCall") -> ToolCall:
        f = Fields(data, where)
        fn = Fields(f.object("function", "api.ToolCallFunction") or {}, f.path("function"))
        arguments = fn.object("arguments", "api.ToolCallFunctionArguments")
        return cls(
            id=f.string("id"),
            function=ToolCallFunction(
                index=fn.integer("index"),
                name=fn.string("name"),
                arguments=dict(arguments or {}),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id} if self.id else {}
        out["function"] = self.function.to_json()
        return out


@attrs.frozen(kw_only=True)
class ChatMessage:
    """One `api.Message`; `role` is lower-cased and one of `CHAT_ROLES`."""

    role: str
    content: str = ""
    thinking: str = ""
    images: tuple[bytes, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""
    tool_call_id: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "Message") -> ChatMessage:
        f = Fields(data, where)
        role = f.string("role").lower()
        if role not in CHAT_ROLES:
            raise APIError(400, f"invalid role {go_quote(role)} in {f.path('role')}: {_ROLE_TEXT}")
        calls = f.objects("tool_calls", "api.ToolCall")
        return cls(
            role=role,
            content=f.string("content"),
            thinking=f.string("thinking"),
            images=parse_images(f.get("images"), f.path("images")),
            tool_calls=tuple(
                ToolCall.from_json(c, f"{f.path('tool_calls')}[{i}]") for i, c in enumerate(calls)
            ),
            tool_name=f.string("tool_name"),
            tool_call_id=f.string("tool_call_id"),
        )

    def to_json(self) -> dict[str, Any]:
        """Ollama's JSON for the message (omitempty fields left out, images as base64)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            out["thinking"] = self.thinking
        if self.images:
            out["images"] = [base64.b64encode(img).decode("ascii") for img in self.images]
        if self.tool_calls:
            out["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.tool_name:
            out["tool_name"] = self.tool_name
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


def _check_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    # Tools reach the chat template as they are; check the shape Go's `api.Tool` would enforce.
    f = Fields(tool, where)
    f.string("type")
    function = f.object("function", "api.ToolFunction")
    if function is not None:
        fn = Fields(function, f.path("function"))
        fn.string("name")
        fn.string("description")
        params = fn.object("parameters", "api.ToolFunctionParameters")
        if params is not None:
            p = Fields(params, fn.path("parameters"))
            p.string("type")
            p.strings("required")
            p.object("properties", "api.ToolPropertiesMap")
    return tool


@attrs.frozen(kw_only=True)
class ChatRequest:
    """`POST /api/chat` (reference §1.4). `tools` are kept as the client's dicts."""

    GO_NAME: ClassVar[str] = "ChatRequest"

    model: str = ""
    messages: tuple[ChatMessage, ...] = ()
    stream: bool = True
    format: str = ""
    keep_alive: float | None = None
    tools: tuple[dict[str, Any], ...] = ()
    options: dict[str, Any] = attrs.field(factory=dict)
    think: bool | str | None = None
    truncate: bool = True
    shift: bool = True
    debug_render_only: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChatRequest:
        f = Fields(data, cls.GO_NAME)
        messages = f.objects("messages", "api.Message")
        tools = f.objects("tools", "api.Tool")
        return cls(
            model=f.string("model"),
            messages=tuple(
                ChatMessage.from_json(m, f"{f.path('messages')}[{i}]")
                for i, m in enumerate(messages)
            ),
            stream=f.boolean("stream", True),
            format=parse_format(f.get("format")),
            keep_alive=parse_keep_alive(f.get("keep_alive")),
            tools=tuple(_check_tool(t, f"{f.path('tools')}[{i}]") for i, t in enumerate(tools)),
            options=parse_options(f.get("options"), f.path("options")),
            think=parse_think(f.get("think")),
            truncate=f.boolean("truncate", True),
            shift=f.boolean("shift", True),
            debug_render_only=f.boolean("_debug_render_only"),
        )


@attrs.frozen(kw_only=True)
class EmbedRequest:
    """`POST /api/embed` (reference §1.5). `input` is always a tuple; `""` and null are empty."""

    GO_NAME: ClassVar[str] = "EmbedRequest"

    model: str = ""
    input: tuple[str, ...] = ()
    keep_alive: float | None = None
    truncate: bool = True
    dimensions: int = 0
    options: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmbedRequest:
        f = Fields(data, cls.GO_NAME)
        raw_input = f.get("input")
        inputs: tuple[str, ...]
        if raw_input is None:
            inputs = ()
        elif isinstance(raw_input, str):
            # Ollama embeds nothing for an empty string (and still loads the model).
            inputs = (raw_input,) if raw_input else ()
        elif isinstance(raw_input, list) and all(isinstance(s, str) for s in raw_input):
            inputs = tuple(raw_input)
        else:
            raise APIError(400, "invalid input type")
        dimensions = f.integer("dimensions")
        if dimensions < 0:
            raise APIError(400, f"invalid dimensions {dimensions}: must be >= 0")
        return cls(
            model=f.string("model"),
            input=inputs,
            keep_alive=parse_keep_alive(f.get("keep_alive")),
            truncate=f.boolean("truncate", True),
            dimensions=dimensions,
            options=parse_options(f.get("options"), f.path("options")),
        )


@attrs.frozen(kw_only=True)
class EmbeddingsRequest:
    """`POST /api/embeddings`, the legacy single-prompt form (reference §1.6)."""

    GO_NAME: ClassVar[str] = "EmbeddingRequest"

    model: str = ""
    prompt: str = ""
    keep_alive: float | None = None
    options: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmbeddingsRequest:
        f = Fields(data, cls.GO_NAME)
        return cls(
            model=f.string("model"),
            prompt=f.string("prompt"),
            keep_alive=parse_keep_alive(f.get("keep_alive")),
            options=parse_options(f.get("options"), f.path("options")),
        )


def _model_or_name(f: Fields) -> str:
    # `name` is the deprecated spelling; Ollama uses it only when `model` is empty.
    return f.string("model") or f.string("name")


@attrs.frozen(kw_only=True)
class ShowRequest:
    """`POST /api/show` (reference §1.8). `model` already falls back to `name`."""

    GO_NAME: ClassVar[str] = "ShowRequest"

    model: str = ""
    verbose: bool = False
    system: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShowRequest:
        f = Fields(data, cls.GO_NAME)
        return cls(
            model=_model_or_name(f),
            verbose=f.boolean("verbose"),
            system=f.optional_string("system"),
            options=parse_options(f.get("options"), f.path("options")),
        )


@attrs.frozen(kw_only=True)
class CopyRequest:
    """`POST /api/copy` (reference §1.9)."""

    GO_NAME: ClassVar[str] = "CopyRequest"

    source: str = ""
    destination: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CopyRequest:
        f = Fields(data, cls.GO_NAME)
        return cls(source=f.string("source"), destination=f.string("destination"))


@attrs.frozen(kw_only=True)
class DeleteRequest:
    """`DELETE /api/delete` (reference §1.9). `model` already falls back to `name`."""

    GO_NAME: ClassVar[str] = "DeleteRequest"

    model: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeleteRequest:
        return cls(model=_model_or_name(Fields(data, cls.GO_NAME)))


@attrs.frozen(kw_only=True)
class PullRequest:
    """`POST /api/pull` (reference §1.10). `model` already falls back to `name`."""

    GO_NAME: ClassVar[str] = "PullRequest"

    model: str = ""
    insecure: bool = False
    stream: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullRequest:
        f = Fields(data, cls.GO_NAME)
        return cls(
            model=_model_or_name(f),
            insecure=f.boolean("insecure"),
            stream=f.boolean("stream", True),
        )


@attrs.frozen(kw_only=True)
class PushRequest(PullRequest):
    """`POST /api/push`: the same body as pull."""

    GO_NAME: ClassVar[str] = "PushRequest"


def _file_map(f: Fields, key: str) -> dict[str, str]:
    files = f.string_map(key)
    for name, digest in files.items():
        if not is_valid_relative_path(name):
            raise APIError(400, "file path must be relative")
        if not DIGEST_RE.match(digest):
            raise APIError(
                400,
                f"invalid digest format for {f.path(key)}[{go_quote(name)}]: {go_quote(digest)}",
            )
    return files


def _licenses(f: Fields) -> tuple[str, ...]:
    value = f.get("license")
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return f.strings("license")
    raise APIError(400, f"invalid {f.path('license')}: must be a string or a list of strings")


@attrs.frozen(kw_only=True)
class CreateJSON:
    """`POST /api/create`, JSON form (reference §2.5).

    `model` already falls back to `name`, `quantize` to `quantization`. `template` and `system`
    are None unless non-empty, and `messages` None unless some are given: in each case Ollama
    keeps the base model's value.
    """

    GO_NAME: ClassVar[str] = "CreateRequest"

    model: str = ""
    stream: bool = True
    from_: str = ""
    files: dict[str, str] = attrs.field(factory=dict)
    adapters: dict[str, str] = attrs.field(factory=dict)
    template: str | None = None
    license: tuple[str, ...] = ()
    system: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict)
    messages: tuple[Message, ...] | None = None
    quantize: str = ""
    renderer: str = ""
    parser: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreateJSON:
        f = Fields(data, cls.GO_NAME)
        messages = []
        for i, item in enumerate(f.objects("messages", "api.Message")):
            m = Fields(item, f"{f.path('messages')}[{i}]")
            role = m.string("role").lower()
            if role not in MESSAGE_ROLES:
                raise APIError(400, _MESSAGE_ROLE_TEXT)
            messages.append(Message(role, m.string("content")))
        return cls(
            model=_model_or_name(f),
            stream=f.boolean("stream", True),
            from_=f.string("from"),
            files=_file_map(f, "files"),
            adapters=_file_map(f, "adapters"),
            template=f.optional_string("template"),
            license=_licenses(f),
            system=f.optional_string("system"),
            parameters=_parameters(f.object("parameters"), f.path("parameters")),
            messages=tuple(messages) or None,
            quantize=f.string("quantize") or f.string("quantization"),
            renderer=f.string("renderer"),
            parser=f.string("parser"),
        )

    def to_store_request(self) -> CreateRequest:
        return CreateRequest(
            from_=self.from_,
            files=dict(self.files),
            adapters=dict(self.adapters),
            template=self.template,
            system=self.system,
            license=self.license,
            parameters=dict(self.parameters),
            messages=self.messages,
        )
