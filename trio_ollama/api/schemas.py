"""Request bodies of the native Ollama API, declared once and checked before a handler sees them.

Each request is an attrs class whose fields say, with `go_field`, their JSON name, Go type and
conversion: Go's type errors (`json: cannot unmarshal ... into Go struct field ...`) come from
the Go types, Ollama's own texts (from its `server/routes.go`, `server/create.go` and
`api/types.go`) from the conversions, and defaults from the attrs fields. Several malformed values
that Ollama lets through until they fail as a 500 (an unknown `format`, an option of the wrong
type) are a 400 here, so a 500 from the server always means a bug.

Everything here is pure: bytes or dicts in, frozen attrs objects out, `APIError` for the client.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import attrs

from trio_ollama.api.errors import APIError
from trio_ollama.gocompat import decode as go
from trio_ollama.gocompat.decode import (
    ANY,
    BOOL,
    INT,
    INT32_MAX,
    MAP_ANY,
    STRING,
    DecodeError,
    GoType,
    go_field,
    map_of,
    slice_of,
    struct,
    struct_type,
)
from trio_ollama.gocompat.durations import (
    DurationError,
    keep_alive_seconds,
    parse_keep_alive_duration,
)
from trio_ollama.gocompat.gojson import quote as go_quote
from trio_ollama.options import (
    DEPRECATED_OPTIONS,
    OPTIONS,
    OptionError,
    check_option,
    format_params,
)
from trio_ollama.store.create import is_valid_relative_path
from trio_ollama.store.layout import DIGEST_RE
from trio_ollama.store.modelfile import MESSAGE_ROLES, CreateRequest
from trio_ollama.templates import IMAGE_DATA, Message

log = logging.getLogger(__name__)

__all__ = [
    "CHAT_ROLES",
    "THINK_LEVELS",
    "ChatRequest",
    "CopyRequest",
    "CreateJSON",
    "DeleteRequest",
    "EmbedRequest",
    "EmbeddingsRequest",
    "GenerateRequest",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
    "decode_request",
    "parse_body",
    "parse_format",
    "parse_images",
    "parse_keep_alive",
    "parse_options",
    "parse_think",
]

CHAT_ROLES = ("system", "user", "assistant", "tool")
# Ollama HEAD's ThinkValue levels ("max" came after v0.12).
THINK_LEVELS = ("high", "medium", "low", "max")

_THINK_LEVELS_TEXT = '"high", "medium", "low", "max", true, or false'
_ROLE_TEXT = 'must be one of "system", "user", "assistant", or "tool"'
_MESSAGE_ROLE_TEXT = 'message role must be one of "system", "user", or "assistant"'
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


@contextmanager
def _client_errors() -> Iterator[None]:
    try:
        yield
    except (DecodeError, OptionError) as exc:
        raise APIError(400, str(exc)) from None


# --- the body -------------------------------------------------------------------------------------


def parse_body(raw: bytes, go_type: GoType | None = None) -> dict[str, Any]:
    """Decode a request body to a JSON object.

    Empty (or all-whitespace) is Ollama's `missing request body`; `null` is an empty object, as
    Go decodes it into a zero struct. A body that is not an object is Go's error for `go_type`.
    """
    if not raw.strip(b" \t\r\n"):
        raise APIError(400, "missing request body")
    with _client_errors():
        return go.decode_object(raw, go_type or MAP_ANY)


class Request:
    """A request body declared with `go_field`s; `GO_NAME` is the Go type Ollama decodes into."""

    GO_NAME: ClassVar[str]

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        with _client_errors():
            return go.unmarshal(cls, data)


R = TypeVar("R", bound=Request)


def decode_request(cls: type[R], raw: bytes) -> R:
    """The whole decoding step of a handler: bytes to a checked request, or a 400."""
    go_type = struct_type(cls)
    data = parse_body(raw, go_type)
    with _client_errors():
        return go.build(cls, data, go_type.struct_name)


# --- conversions (value, path) -> field value; the value is already of its Go type ----------------


def _optional_string(value: str, path: str) -> str | None:
    # An override where Ollama treats "" as "not given" (system, template).
    return value or None


def _token_ids(value: list[int | None], path: str) -> tuple[int, ...]:
    tokens = tuple(0 if t is None else t for t in value)  # Go decodes a null element as 0
    for i, token in enumerate(tokens):
        # Token ids go straight to the tokenizer; a negative or huge one can crash it.
        if not 0 <= token <= INT32_MAX:
            raise APIError(400, f"invalid token id {token} in context[{i}]")
    return tokens


def parse_keep_alive(value: Any, path: str = "keep_alive") -> float | None:
    """`keep_alive` in seconds: None when absent, `math.inf` for forever (Ollama's
    `Duration.UnmarshalJSON`, `api/types.go`).

    A number is seconds; a string is a Go duration; anything negative means forever.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise APIError(400, "Unsupported type: 'bool'")
    if isinstance(value, int | float):
        return keep_alive_seconds(value)  # an int, even one of 400 digits, compares exactly
    if isinstance(value, str):
        try:
            return parse_keep_alive_duration(value)
        except DurationError as e:
            raise APIError(400, str(e)) from None
    go_type = "[]interface {}" if isinstance(value, list) else "map[string]interface {}"
    raise APIError(400, f"Unsupported type: '{go_type}'")


def parse_think(value: Any, path: str = "think") -> bool | str | None:
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


def parse_format(value: Any, path: str = "format") -> str:
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


def parse_images(value: list[str | None], path: str) -> tuple[bytes, ...]:
    """`images`: base64 strings (Go's `[]byte` encoding) decoded to bytes.

    An empty image is refused: no runner can use it, and it would fail much later.
    """
    images = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        # Go's base64 decoder skips line breaks, as MIME-wrapped base64 has them.
        text = (item or "").replace("\r", "").replace("\n", "")
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


def parse_options(value: Mapping[str, Any], path: str = "options") -> dict[str, Any]:
    """`options` (Ollama's `Options.FromMap`, `api/types.go`): only the keys given, type-checked
    and range-checked.

    Unknown keys are logged and ignored and deprecated ones ignored, as Ollama does; `null`
    values are skipped (Go's `FromMap` does the same).
    """
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in DEPRECATED_OPTIONS:
            log.debug("ignoring deprecated option %s", key)
            continue
        if key not in OPTIONS:
            log.warning("invalid option provided: %s", key)
            continue
        if item is None:
            continue
        with _client_errors():
            out[key] = check_option(key, item)
    return out


def _parameters(value: Mapping[str, Any], path: str) -> dict[str, Any]:
    """`/api/create` parameters, stored in the params layer: typed like options, strictly.

    Unlike request options an unknown name is an error (as `PARAMETER` is in a Modelfile), and
    Modelfile-style strings ("0.7", "true") are converted, so clients that pass the text through
    get the same result as `ollama create`.
    """
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in DEPRECATED_OPTIONS:
            log.warning("parameter %s is deprecated", key)
            continue
        if key not in OPTIONS:
            raise APIError(400, f"unknown parameter '{key}'")
        if item is None:
            continue
        if isinstance(item, str) and OPTIONS[key].kind != "strings":
            try:
                item = format_params({key: [item]})[key]
            except OptionError as e:
                raise APIError(400, f"{path}[{go_quote(key)}]: {e}") from None
        with _client_errors():
            out[key] = check_option(key, item)
    return out


# --- requests -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GenerateRequest(Request):
    """`POST /api/generate` (Ollama's `GenerateHandler`, `server/routes.go`). `system` and
    `template` are None unless non-empty."""

    GO_NAME: ClassVar[str] = "api.GenerateRequest"

    model: str = go_field(STRING, default="")
    prompt: str = go_field(STRING, default="")
    suffix: str = go_field(STRING, default="")
    system: str | None = go_field(STRING, default=None, convert=_optional_string)
    template: str | None = go_field(STRING, default=None, convert=_optional_string)
    context: tuple[int, ...] | None = go_field(slice_of(INT), default=None, convert=_token_ids)
    stream: bool = go_field(BOOL, default=True)
    raw: bool = go_field(BOOL, default=False)
    format: str = go_field(ANY, default="", convert=parse_format)
    keep_alive: float | None = go_field(ANY, default=None, convert=parse_keep_alive)
    images: tuple[bytes, ...] = go_field(slice_of(IMAGE_DATA), default=(), convert=parse_images)
    options: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=parse_options)
    think: bool | str | None = go_field(ANY, default=None, convert=parse_think)
    truncate: bool = go_field(BOOL, default=True)
    shift: bool = go_field(BOOL, default=True)
    debug_render_only: bool = go_field(BOOL, default=False, json="_debug_render_only")
    logprobs: bool = go_field(BOOL, default=False)
    top_logprobs: int = go_field(INT, default=0)
    # Beyond Ollama (as vLLM's): lower runs first while requests wait (docs/policies.md).
    priority: int | None = go_field(INT, default=None)


def _role(value: str, path: str) -> str:
    role = value.lower()
    if role not in CHAT_ROLES:
        raise APIError(400, f"invalid role {go_quote(role)} in {path}: {_ROLE_TEXT}")
    return role


# Ollama's `api.Message`, as Go's decoder checks it (declared once, by `templates.Message`). A
# checked message is built once into that one message type the prompt and the templates read,
# its images decoded here and nowhere else.
_MESSAGE = struct_type(Message)


def _message(value: Mapping[str, Any] | None, path: str) -> Message:
    """One checked `api.Message`: its role lower-cased and one of `CHAT_ROLES` (a message must
    have one), its images decoded."""
    value = value or {}
    role = _role(value.get("role") or "", f"{path}.role")
    images = value.get("images")
    decoded = parse_images(images, f"{path}.images") if images is not None else ()
    return Message.from_json({**value, "role": role, "images": decoded})


def _messages(value: list[Mapping[str, Any] | None], path: str) -> tuple[Message, ...]:
    return tuple(_message(m, f"{path}[{i}]") for i, m in enumerate(value))


# Tools reach the chat template as the client sent them; Go's `api.Tool` fixes their shape.
_TOOL = struct(
    "api.Tool",
    type=STRING,
    function=struct(
        "api.ToolFunction",
        name=STRING,
        description=STRING,
        parameters=struct(
            "api.ToolFunctionParameters",
            type=STRING,
            required=slice_of(STRING),
            properties=GoType("map", "api.ToolPropertiesMap", elem=ANY),
        ),
    ),
)


def _tools(value: list[dict[str, Any] | None], path: str) -> tuple[dict[str, Any], ...]:
    return tuple(tool or {} for tool in value)


@attrs.frozen(kw_only=True)
class ChatRequest(Request):
    """`POST /api/chat` (Ollama's `ChatHandler`, `server/routes.go`). `tools` are kept as the
    client's dicts."""

    GO_NAME: ClassVar[str] = "api.ChatRequest"

    model: str = go_field(STRING, default="")
    messages: tuple[Message, ...] = go_field(slice_of(_MESSAGE), default=(), convert=_messages)
    stream: bool = go_field(BOOL, default=True)
    format: str = go_field(ANY, default="", convert=parse_format)
    keep_alive: float | None = go_field(ANY, default=None, convert=parse_keep_alive)
    tools: tuple[dict[str, Any], ...] = go_field(slice_of(_TOOL), default=(), convert=_tools)
    options: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=parse_options)
    think: bool | str | None = go_field(ANY, default=None, convert=parse_think)
    truncate: bool = go_field(BOOL, default=True)
    shift: bool = go_field(BOOL, default=True)
    debug_render_only: bool = go_field(BOOL, default=False, json="_debug_render_only")
    logprobs: bool = go_field(BOOL, default=False)
    top_logprobs: int = go_field(INT, default=0)
    # Beyond Ollama (as vLLM's): lower runs first while requests wait (docs/policies.md).
    priority: int | None = go_field(INT, default=None)


def _embed_input(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        # Ollama embeds nothing for an empty string (and still loads the model).
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise APIError(400, "invalid input type")


def _dimensions(value: int, path: str) -> int:
    if value < 0:
        raise APIError(400, f"invalid dimensions {value}: must be >= 0")
    return value


@attrs.frozen(kw_only=True)
class EmbedRequest(Request):
    """`POST /api/embed` (Ollama's `EmbedHandler`, `server/routes.go`). `input` is always a
    tuple; `""` and null are empty."""

    GO_NAME: ClassVar[str] = "api.EmbedRequest"

    model: str = go_field(STRING, default="")
    input: tuple[str, ...] = go_field(ANY, default=(), convert=_embed_input)
    keep_alive: float | None = go_field(ANY, default=None, convert=parse_keep_alive)
    truncate: bool = go_field(BOOL, default=True)
    dimensions: int = go_field(INT, default=0, convert=_dimensions)
    options: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=parse_options)


@attrs.frozen(kw_only=True)
class EmbeddingsRequest(Request):
    """`POST /api/embeddings`, the legacy single-prompt form (Ollama's `EmbeddingsHandler`)."""

    GO_NAME: ClassVar[str] = "api.EmbeddingRequest"

    model: str = go_field(STRING, default="")
    prompt: str = go_field(STRING, default="")
    keep_alive: float | None = go_field(ANY, default=None, convert=parse_keep_alive)
    options: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=parse_options)


# `name` is the deprecated spelling of `model`; Ollama uses it only when `model` is empty.


@attrs.frozen(kw_only=True)
class ShowRequest(Request):
    """`POST /api/show` (Ollama's `ShowHandler`, `server/routes.go`). `model` already falls back
    to `name`."""

    GO_NAME: ClassVar[str] = "api.ShowRequest"

    model: str = go_field(STRING, default="", fallback="name")
    verbose: bool = go_field(BOOL, default=False)
    system: str | None = go_field(STRING, default=None, convert=_optional_string)
    options: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=parse_options)


@attrs.frozen(kw_only=True)
class CopyRequest(Request):
    """`POST /api/copy` (Ollama's `CopyHandler`, `server/routes.go`)."""

    GO_NAME: ClassVar[str] = "api.CopyRequest"

    source: str = go_field(STRING, default="")
    destination: str = go_field(STRING, default="")


@attrs.frozen(kw_only=True)
class DeleteRequest(Request):
    """`DELETE /api/delete` (Ollama's `DeleteHandler`, `server/routes.go`). `model` already falls
    back to `name`."""

    GO_NAME: ClassVar[str] = "api.DeleteRequest"

    model: str = go_field(STRING, default="", fallback="name")


@attrs.frozen(kw_only=True)
class PullRequest(Request):
    """`POST /api/pull` (Ollama's `PullHandler`, `server/routes.go`). `model` already falls back
    to `name`."""

    GO_NAME: ClassVar[str] = "api.PullRequest"

    model: str = go_field(STRING, default="", fallback="name")
    insecure: bool = go_field(BOOL, default=False)
    stream: bool = go_field(BOOL, default=True)


@attrs.frozen(kw_only=True)
class PushRequest(PullRequest):
    """`POST /api/push`: the same body as pull."""

    GO_NAME: ClassVar[str] = "api.PushRequest"


def _file_map(value: Mapping[str, str | None], path: str) -> dict[str, str]:
    files = {name: digest or "" for name, digest in value.items()}
    for name, digest in files.items():
        if not is_valid_relative_path(name):
            raise APIError(400, "file path must be relative")
        if not DIGEST_RE.match(digest):
            raise APIError(
                400, f"invalid digest format for {path}[{go_quote(name)}]: {go_quote(digest)}"
            )
    return files


def _licenses(value: Any, path: str) -> tuple[str, ...]:
    if value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise APIError(400, f"invalid {path}: must be a string or a list of strings")


def _create_messages(
    value: list[Mapping[str, Any] | None], path: str
) -> tuple[Message, ...] | None:
    messages = []
    for item in value:
        role = str((item or {}).get("role") or "").lower()
        if role not in MESSAGE_ROLES:
            raise APIError(400, _MESSAGE_ROLE_TEXT)
        messages.append(Message(role, str((item or {}).get("content") or "")))
    return tuple(messages) or None


@attrs.frozen(kw_only=True)
class CreateJSON(Request):
    """`POST /api/create`, JSON form (Ollama's `CreateHandler`, `server/create.go`).

    `model` already falls back to `name`, `quantize` to `quantization`. `template` and `system`
    are None unless non-empty, and `messages` None unless some are given: in each case Ollama
    keeps the base model's value.
    """

    GO_NAME: ClassVar[str] = "api.CreateRequest"

    model: str = go_field(STRING, default="", fallback="name")
    stream: bool = go_field(BOOL, default=True)
    from_: str = go_field(STRING, default="", json="from")
    files: dict[str, str] = go_field(map_of(STRING), factory=dict, convert=_file_map)
    adapters: dict[str, str] = go_field(map_of(STRING), factory=dict, convert=_file_map)
    template: str | None = go_field(STRING, default=None, convert=_optional_string)
    license: tuple[str, ...] = go_field(ANY, default=(), convert=_licenses)
    system: str | None = go_field(STRING, default=None, convert=_optional_string)
    parameters: dict[str, Any] = go_field(MAP_ANY, factory=dict, convert=_parameters)
    messages: tuple[Message, ...] | None = go_field(
        slice_of(_MESSAGE), default=None, convert=_create_messages
    )
    quantize: str = go_field(STRING, default="", fallback="quantization")
    renderer: str = go_field(STRING, default="")
    parser: str = go_field(STRING, default="")

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
            renderer=self.renderer,
            parser=self.parser,
        )
