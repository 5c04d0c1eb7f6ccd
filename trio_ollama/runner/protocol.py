"""The runner protocol, sans-IO: messages to bytes and bytes to messages, nothing else.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON, an object whose
`type` names the message. Both the parent (`RunnerClient`) and the child (`serve_runner`) drive a
`FrameDecoder` with whatever bytes their stream gives them; neither this module nor its messages
know about sockets, threads or Trio.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import attrs

from trio_ollama.options import OPTIONS

MAX_FRAME = 64 * 1024 * 1024
# Token ids in one frame: eleven bytes each at most ("4294967295,"), so far inside MAX_FRAME.
TOKENS_PER_FRAME = 1 << 20
_HEADER = struct.Struct(">I")

_REGISTRY: dict[str, type[Message]] = {}
_DEFAULT: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}
M = TypeVar("M", bound="type[Message]")


class ProtocolError(ValueError):
    """Bytes that are not a valid frame or message: the peer is broken, not the request."""


class Message:
    """Base of every message; subclasses are attrs classes registered by `message`."""

    kind: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        # Frames are this project's own JSON, not a Go struct's: every field, then the kind.
        data = attrs.asdict(self, recurse=True)  # type: ignore[arg-type]
        data["type"] = self.kind
        return data


@attrs.frozen
class Request(Message):
    """A message the parent sends and the runner answers; replies carry the same `id`."""

    id: int


@attrs.frozen
class Reply(Message):
    """An answer to the request with the same `id`; a terminal one (`TERMINAL`) is the last."""

    id: int


def message(kind: str) -> Any:
    def register(cls: M) -> M:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return register


# ----- load


@attrs.frozen(kw_only=True)
class RunnerOptions:
    """The options fixed when a runner loads: one field for each "load" option of
    `trio_ollama.options`, whose defaults these are. A change means a reload (Ollama's
    `needsReload`, `server/sched.go`)."""

    num_ctx: int = _DEFAULT["num_ctx"]
    num_batch: int = _DEFAULT["num_batch"]
    num_gpu: int = _DEFAULT["num_gpu"]
    main_gpu: int = _DEFAULT["main_gpu"]
    use_mmap: bool | None = _DEFAULT["use_mmap"]
    num_thread: int = _DEFAULT["num_thread"]

    def normalized(self, n_ctx_train: int, minimum: int = 4) -> RunnerOptions:
        """Ollama's adjustments: num_ctx at least `minimum` (4; 2048 for a model that sees)
        and at most the training context."""
        num_ctx = max(minimum, self.num_ctx)
        if n_ctx_train > 0:
            num_ctx = min(num_ctx, n_ctx_train)
        return attrs.evolve(self, num_ctx=num_ctx, num_batch=max(1, min(self.num_batch, num_ctx)))


@message("load")
@attrs.frozen(kw_only=True)
class Load(RunnerOptions, Message):
    """Load a model: its options, and what else the runner needs to know."""

    model_path: str
    num_parallel: int = 1
    flash_attention: bool = False
    # Flash attention is the runner's to decide, by measuring (runner/attention.py): the
    # server sets it where OLLAMA_FLASH_ATTENTION is not set and no layer is on a GPU.
    flash_attention_auto: bool = False
    kv_cache_type: str = ""
    adapters: list[str] = attrs.field(factory=list)
    embedding: bool = False
    # A vision projector GGUF, loaded beside the model with llama.cpp's mtmd ("": none).
    projector_path: str = ""


@message("ready")
@attrs.frozen(kw_only=True)
class Ready(Message):
    """What the engine really allocated, in bytes, and the context it really has."""

    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    num_ctx: int
    num_parallel: int
    n_ctx_train: int
    n_vocab: int
    n_embd: int
    gpu_layers: int = 0
    pid: int = 0
    # The most bytes of text one token stands for (0: no such bound), so that a prompt that
    # surely overflows the window is cut before it is sent or tokenized (`runner.window`).
    max_token_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes


# ----- completion


@attrs.frozen(kw_only=True)
class Sampling:
    """Per-request predict options (Ollama's `api.Options`, `api/types.go`), already merged and
    validated: one field for each "predict" option of `trio_ollama.options`, whose defaults these
    are."""

    num_keep: int = _DEFAULT["num_keep"]
    seed: int = _DEFAULT["seed"]
    num_predict: int = _DEFAULT["num_predict"]
    top_k: int = _DEFAULT["top_k"]
    top_p: float = _DEFAULT["top_p"]
    min_p: float = _DEFAULT["min_p"]
    typical_p: float = _DEFAULT["typical_p"]
    repeat_last_n: int = _DEFAULT["repeat_last_n"]
    temperature: float = _DEFAULT["temperature"]
    repeat_penalty: float = _DEFAULT["repeat_penalty"]
    presence_penalty: float = _DEFAULT["presence_penalty"]
    frequency_penalty: float = _DEFAULT["frequency_penalty"]
    stop: list[str] = attrs.field(factory=list)


@message("completion")
@attrs.frozen(kw_only=True)
class Completion(Request):
    prompt: str = ""
    # Extra token ids placed before the prompt text (a previous `context`).
    tokens: list[int] = attrs.field(factory=list)
    sampling: Sampling = attrs.field(factory=Sampling)
    # "" (free text), "json", or a JSON schema as JSON text: the runner turns it into a grammar.
    format: str = ""
    truncate: bool = True
    shift: bool = True
    # Log-probabilities of each generated token, and of its `top_logprobs` likeliest rivals.
    logprobs: bool = False
    top_logprobs: int = 0
    # The images the prompt's `[img-N]` tags stand for, base64 (the frame is JSON): image N is
    # `images[N]`. Only a runner with a projector takes them.
    images: list[str] = attrs.field(factory=list)
    # Control tokens written as text when generated (Ollama's PreservedTokens: the tags the
    # output parser reads); a string that is not one token of the vocabulary preserves nothing.
    # Other control tokens are dropped from the text, as llama.cpp's detokenizer drops them.
    preserved: list[str] = attrs.field(factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        data = dict(data)
        data["sampling"] = Sampling(**data.get("sampling", {}))
        return cls(**data)


@message("piece")
@attrs.frozen
class Piece(Reply):
    """Generated text for one request: complete UTF-8, with stop strings already removed.

    With `logprobs` asked for, one entry per token generated since the last piece, in Ollama's
    shape: `{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}`
    (`top_logprobs` only when asked for). Text held back (a possible stop string, a partial
    character) keeps its tokens' entries until it goes out.
    """

    text: str
    logprobs: list[dict[str, Any]] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        # A frame, as Message's (not a Go struct): written by hand to leave out empty logprobs.
        data: dict[str, Any] = {"type": self.kind, "id": self.id, "text": self.text}
        if self.logprobs:  # pieces go by the thousand: nothing for what was not asked
            data["logprobs"] = self.logprobs
        return data


@message("done")
@attrs.frozen(kw_only=True)
class Done(Reply):
    done_reason: str
    prompt_eval_count: int = 0  # the whole prompt, as Ollama counts it
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    prompt_cached: int = 0  # of prompt_eval_count, the tokens the slot's cache already held
    prompt_images: int = 0  # of prompt_eval_count, the tokens the prompt's images became


# ----- embeddings and tokens


@message("embed")
@attrs.frozen(kw_only=True)
class Embed(Request):
    text: str
    truncate: bool = True


@message("embedding")
@attrs.frozen(kw_only=True)
class Embedding(Reply):
    embedding: list[float]
    prompt_eval_count: int


@message("tokenize")
@attrs.frozen(kw_only=True)
class Tokenize(Request):
    text: str
    add_special: bool = True
    # Only the count comes back: what fitting a prompt needs, and it never outgrows a frame.
    count_only: bool = False


@message("tokens_part")
@attrs.frozen
class TokensPart(Reply):
    """Some of a tokenization's ids, in order; a long one (a 60 MB prompt is 15 million ids)
    goes in parts that each fit a frame, and ends with `Tokens`."""

    tokens: list[int]


@message("tokens")
@attrs.frozen
class Tokens(Reply):
    tokens: list[int]  # the last part (all of them, for most texts); empty for a count
    count: int  # of the whole tokenization


@message("detokenize")
@attrs.frozen
class Detokenize(Request):
    tokens: list[int]


@message("text")
@attrs.frozen
class Text(Reply):
    text: str


# ----- control


@message("cancel")
@attrs.frozen
class Cancel(Message):
    """Drop the request `id` at the next step; nothing answers a cancel."""

    id: int


@message("set_threads")
@attrs.frozen
class SetThreads(Message):
    n_threads: int


@message("ping")
@attrs.frozen
class Ping(Request):
    """Is the runner's loop alive? Answered by a `Pong`."""


@message("pong")
@attrs.frozen
class Pong(Reply):
    """The answer to a `Ping`."""


@message("error")
@attrs.frozen(kw_only=True)
class RequestFailed(Reply):
    """One request failed; the runner carries on. `invalid` when the request itself is at fault
    (too long, empty, a bad grammar) rather than the runner."""

    message: str
    invalid: bool = False


@message("fatal")
@attrs.frozen
class Fatal(Message):
    """The runner cannot go on (load failed, engine broken); it exits after sending this."""

    message: str


# The replies after which a request has no more to hear: every reply but a `Piece`.
TERMINAL: frozenset[type[Reply]] = frozenset({Done, Embedding, Tokens, Text, Pong, RequestFailed})


# ----- framing


class FrameTooLarge(ProtocolError):
    """A message too large for one frame: refuse it before a byte is sent, so the stream stays
    whole and only the request that asked for it fails."""


def encode(msg: Message) -> bytes:
    # Raw UTF-8 (not \u escapes: "é" stays 2 bytes, not 6). Text from clients has had its lone
    # surrogates replaced at the JSON boundary; `replace` only guards against a bug.
    text = json.dumps(msg.to_json(), separators=(",", ":"), ensure_ascii=False)
    payload = text.encode("utf-8", "replace")
    if len(payload) > MAX_FRAME:
        raise FrameTooLarge(
            f"a {msg.kind} message of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit"
        )
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("frame is not a JSON object")
    kind = data.pop("type", None)
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {kind!r}")
    try:
        if cls is Completion:
            return Completion.from_json(data)
        return cls(**data)
    except TypeError as exc:
        raise ProtocolError(f"bad {kind} message: {exc}") from exc


class FrameDecoder:
    """Feed it bytes as they arrive; iterate it for the complete messages so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    def feed(self, data: bytes | bytearray) -> None:
        if self._eof:
            raise ProtocolError("data after the end of the stream")
        self._buffer += data

    def feed_eof(self) -> None:
        """The peer closed its end. Call it once the complete messages are read: a frame left
        half-received then means the peer died or is broken mid-message."""
        self._eof = True
        if self._buffer:
            raise ProtocolError(
                f"stream ended inside a frame ({len(self._buffer)} bytes of it received)"
            )

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        if len(self._buffer) < _HEADER.size:
            raise StopIteration
        (length,) = _HEADER.unpack_from(self._buffer)
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
        end = _HEADER.size + length
        if len(self._buffer) < end:
            raise StopIteration
        payload = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return decode_payload(payload)

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)
