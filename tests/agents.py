"""Coding agents' requests and the official SDKs' view of the answers: the requests captured from
Claude Code, Codex and the OpenAI Agents SDK (tests/data/agents/, README there), and a check of
one answer against the `anthropic` or `openai` package's own types, streamed or not, strictly
(pydantic's strict mode, where a number is no string) and with no field the SDK does not know.

`benchmarks.agents` checks what the real clients received with the same `check_answer`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

CAPTURED = Path(__file__).parent / "data" / "agents"
CLIENTS = ("claude-code", "codex", "codex-oss", "agents-sdk")

# What a model answers on, by path: the SDK's type of a whole answer, and of one streamed event.
WHOLE: dict[str, pydantic.TypeAdapter[Any]] = {
    "/v1/messages": pydantic.TypeAdapter(Message),
    "/v1/messages/count_tokens": pydantic.TypeAdapter(MessageTokensCount),
    "/v1/responses": pydantic.TypeAdapter(Response),
    "/v1/chat/completions": pydantic.TypeAdapter(ChatCompletion),
}
EVENT: dict[str, pydantic.TypeAdapter[Any]] = {
    "/v1/messages": pydantic.TypeAdapter(RawMessageStreamEvent),
    "/v1/responses": pydantic.TypeAdapter(ResponseStreamEvent),
    "/v1/chat/completions": pydantic.TypeAdapter(ChatCompletionChunk),
}


def captured(client: str) -> list[dict[str, Any]]:
    """The exchanges recorded from one client, in order: method, path, headers, body, status."""
    exchanges: list[dict[str, Any]] = json.loads((CAPTURED / f"{client}.json").read_text())
    return exchanges


def model_requests(client: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, exchange) of each captured request that a model answers."""
    for k, exchange in enumerate(captured(client)):
        if exchange["method"] == "POST" and exchange["path"].split("?")[0] in WHOLE:
            yield k, exchange


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name or None, data) of each server-sent event in `text`."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


# Fields that OpenAI's own API sends in a Response, and Ollama too, but the SDK's type lacks.
UNDECLARED = {Response: {"store", "presence_penalty", "frequency_penalty"}}


def unknown_fields(value: Any, where: str = "") -> list[str]:
    """Where a validated SDK object holds fields its type does not declare (the SDK keeps
    them, so validation alone would not see an answer in the wrong shape)."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        allowed = UNDECLARED.get(type(value), set())
        found += [f"{where}.{name}" for name in value.model_extra or {} if name not in allowed]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for k, item in enumerate(value):
            found += unknown_fields(item, f"{where}[{k}]")
    return found


def _validate(adapter: pydantic.TypeAdapter[Any], data: Any, what: str) -> list[str]:
    try:
        parsed = adapter.validate_python(data, strict=True)
    except pydantic.ValidationError as exc:
        return [f"{what}: {exc}"]
    return [f"{what}: unknown field {name}" for name in unknown_fields(parsed)]


def check_answer(path: str, status: int, content_type: str, text: str) -> list[str]:
    """What is wrong with one answer to a request on `path`, as the official SDK reads it:
    [] when nothing. Error answers are not judged here (the caller knows whether it wanted one)."""
    path = path.split("?")[0]
    if status != 200 or path not in WHOLE:
        return []
    if "text/event-stream" not in content_type:
        try:
            data = json.loads(text)
        except ValueError as exc:
            return [f"not JSON: {exc}"]
        return _validate(WHOLE[path], data, "answer")
    problems: list[str] = []
    events = sse_events(text)
    if not events:
        return ["an empty stream"]
    for k, (name, data) in enumerate(events):
        if data == "[DONE]":
            if path != "/v1/chat/completions" or k != len(events) - 1:
                problems.append(f"event {k}: [DONE] where none belongs")
            continue
        try:
            event = json.loads(data)
        except ValueError as exc:
            problems.append(f"event {k}: not JSON: {exc}")
            continue
        if name == "ping" and event == {"type": "ping"}:
            continue  # Anthropic's keep-alive, which its SDK reads past (it has no type for it)
        if name is not None and isinstance(event, dict) and event.get("type") != name:
            problems.append(f"event {k}: named {name!r}, typed {event.get('type')!r}")
        problems += _validate(EVENT[path], event, f"event {k} ({name})")
    return problems
