"""The Modelfile language (Ollama's `parser/parser.go`): parse, turn into a create request, and
print back.

Parsing is pure; turning `FROM ./file.gguf` into a blob digest is done by the caller's hasher,
so the same code serves the local store and a CLI that uploads blobs over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from trio_ollama.options import format_params
from trio_ollama.templates import Message

INSTRUCTIONS = (
    "from", "license", "template", "system", "adapter",
    "renderer", "parser", "parameter", "message",
)  # fmt: skip
MESSAGE_ROLES = ("system", "user", "assistant")
_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", '
    '"renderer", "parser", "parameter", or "message"'
)
_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'


class ModelfileError(ValueError):
    """A Modelfile Ollama would reject; the message is Ollama's."""


@attrs.frozen
class Command:
    """One instruction. `name` is the instruction (`model` for FROM) or the parameter name."""

    name: str
    args: str


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def eof(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while not self.eof() and self.text[self.pos] in chars:
            self.pos += 1

    def word(self) -> str:
        start = self.pos
        while not self.eof() and not self.text[self.pos].isspace():
            self.pos += 1
        return self.text[start : self.pos]

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        value = self.text[self.pos : end]
        self.pos = end
        return value

    def value(self) -> str:
        for quote in ('"""', '"'):
            if self.text.startswith(quote, self.pos):
                end = self.text.find(quote, self.pos + len(quote))
                if end < 0:
                    raise ModelfileError("unexpected EOF")
                value = self.text[self.pos + len(quote) : end]
                self.pos = end + len(quote)
                self.rest_of_line()
                return value
        return self.rest_of_line().strip()


def parse_modelfile(text: str) -> list[Command]:
    """Parse a Modelfile into commands; raises `ModelfileError` with Ollama's message."""
    text = text.removeprefix("\ufeff")
    reader = _Reader(text)
    commands: list[Command] = []
    while True:
        reader.skip(" \t\r\n")
        if reader.eof():
            break
        if reader.peek() == "#":
            reader.rest_of_line()
            continue
        line = reader.line
        instruction = reader.word().lower()
        if instruction not in INSTRUCTIONS:
            raise ModelfileError(f"(line {line}): {_INVALID_COMMAND}")
        reader.skip(" \t")
        if instruction == "parameter":
            key = reader.word()
            reader.skip(" \t")
            commands.append(Command(key, reader.value()))
        elif instruction == "message":
            role = reader.word().lower()
            if role not in MESSAGE_ROLES:
                raise ModelfileError(f"(line {line}): {_INVALID_ROLE}")
            reader.skip(" \t")
            commands.append(Command("message", f"{role}: {reader.value()}"))
        else:
            name = "model" if instruction == "from" else instruction
            commands.append(Command(name, reader.value()))
    if not any(c.name == "model" for c in commands):
        raise ModelfileError("no FROM line")
    return commands


def quote(value: str) -> str:
    """Ollama's `parser.quote`: quote values a plain line could not carry."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        return f'"""{value}"""' if '"' in value else f'"{value}"'
    return value


def format_commands(commands: Iterable[Command]) -> str:
    lines = []
    for c in commands:
        if c.name == "model":
            lines.append(f"FROM {c.args}")
        elif c.name in ("license", "template", "system", "adapter", "renderer", "parser"):
            lines.append(f"{c.name.upper()} {quote(c.args)}")
        elif c.name == "message":
            role, _, content = c.args.partition(": ")
            lines.append(f"MESSAGE {role} {quote(content)}")
        else:
            lines.append(f"PARAMETER {c.name} {quote(c.args)}")
    return "".join(line + "\n" for line in lines)


def expand_path(path: str, relative_to: Path) -> Path:
    if path.startswith("~"):
        return Path(path).expanduser()
    candidate = Path(path)
    return candidate if candidate.is_absolute() else relative_to / candidate


@attrs.frozen(kw_only=True)
class CreateRequest:
    """What `/api/create` receives (Ollama's `server/create.go`), independent of how it arrived."""

    from_: str = ""
    files: dict[str, str] = attrs.field(factory=dict)
    adapters: dict[str, str] = attrs.field(factory=dict)
    template: str | None = None
    system: str | None = None
    license: tuple[str, ...] = ()
    parameters: dict[str, Any] = attrs.field(factory=dict)
    messages: tuple[Message, ...] | None = None
    # Ollama's built-in prompt renderer and output parser, by name ("" keeps the base's).
    renderer: str = ""
    parser: str = ""


HashFile = Callable[[Path], str]


def _files_at(path: Path, hash_file: HashFile) -> dict[str, str]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".gguf")
        return {p.name: hash_file(p) for p in found}
    return {path.name: hash_file(path)}


def to_create_request(
    commands: Iterable[Command], relative_to: Path, hash_file: HashFile
) -> CreateRequest:
    """Ollama's `Modelfile.CreateRequest`: local paths become digests via `hash_file`.

    `hash_file` is where the caller stores (or uploads) the file and returns its digest.
    """
    from_ = ""
    files: dict[str, str] = {}
    adapters: dict[str, str] = {}
    template = system = None
    renderer = parser = ""
    licenses: list[str] = []
    messages: list[Message] = []
    params: dict[str, list[str]] = {}
    for c in commands:
        if c.name == "model":
            path = expand_path(c.args, relative_to)
            if path.exists():
                files.update(_files_at(path, hash_file))
            else:
                from_ = c.args
        elif c.name == "adapter":
            adapters.update(_files_at(expand_path(c.args, relative_to), hash_file))
        elif c.name == "template":
            template = c.args
        elif c.name == "system":
            system = c.args
        elif c.name == "license":
            licenses.append(c.args)
        elif c.name == "message":
            role, _, content = c.args.partition(": ")
            messages.append(Message(role, content))
        elif c.name == "renderer":
            renderer = c.args
        elif c.name == "parser":
            parser = c.args
        else:
            params.setdefault(c.name, []).append(c.args)
    return CreateRequest(
        from_=from_,
        files=files,
        adapters=adapters,
        template=template,
        system=system,
        license=tuple(licenses),
        parameters=format_params(params),
        messages=tuple(messages) if messages else None,
        renderer=renderer,
        parser=parser,
    )
