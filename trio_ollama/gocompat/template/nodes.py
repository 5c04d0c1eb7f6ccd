"""The parse tree of a Go template, and the errors and marker values every stage shares."""

from __future__ import annotations

from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

import attrs


class TemplateError(Exception):
    """A template Go's parser would reject (Ollama's create answers `template error: <this>`)."""


class TemplateExecError(TemplateError):
    """A template that parsed but failed while rendering."""


@runtime_checkable
class GoStringer(Protocol):
    """A value with a Go `String()` method: printing it prints this."""

    def go_string(self) -> str: ...


@runtime_checkable
class GoJSONMarshaler(Protocol):
    """A value with its own Go JSON form: JSON-ready Python data, dicts in the order to write."""

    def go_json(self) -> Any: ...


class _NoValue:
    """Go's invalid `reflect.Value`: what a nil `any` becomes once a pipeline has produced it."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = _NoValue()

# Marks "no piped value" in a command, which differs from a piped nil.
MISSING: Final = object()


@attrs.frozen
class TextNode:
    text: str


@attrs.frozen
class FieldNode:
    """`.A.B`: fields looked up from dot."""

    idents: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@attrs.frozen
class VariableNode:
    """`$x.A.B`: `idents[0]` is the variable (with its `$`), the rest are fields."""

    idents: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.idents)


@attrs.frozen
class ChainNode:
    """`(pipeline).A.B`: fields looked up on a parenthesised value."""

    node: Arg
    fields: tuple[str, ...]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@attrs.frozen
class IdentifierNode:
    """A function name."""

    name: str

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class DotNode:
    def __str__(self) -> str:
        return "."


@attrs.frozen
class NilNode:
    def __str__(self) -> str:
        return "nil"


@attrs.frozen
class BoolNode:
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@attrs.frozen
class NumberNode:
    value: int | float
    text: str

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class StringNode:
    value: str
    text: str

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class CommandNode:
    args: tuple[Arg, ...]

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@attrs.frozen
class PipeNode:
    """A pipeline, with the variables it declares (`$x :=`) or assigns (`$x =`)."""

    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[CommandNode, ...]
    line: int

    def __str__(self) -> str:
        text = " | ".join(str(c) for c in self.cmds)
        if self.decl:
            text = f"{', '.join(self.decl)} {'=' if self.is_assign else ':='} {text}"
        return text


@attrs.frozen
class ActionNode:
    pipe: PipeNode
    line: int


@attrs.frozen
class BranchNode:
    """`if`, `range` or `with`; `else if`/`else with` is an else list holding one nested branch."""

    kind: Literal["if", "range", "with"]
    pipe: PipeNode
    list: tuple[Node, ...]
    else_list: tuple[Node, ...] | None
    line: int


@attrs.frozen
class TemplateNode:
    """`{{ template "name" pipeline }}` (also what `block` leaves in place)."""

    name: str
    pipe: PipeNode | None
    line: int


@attrs.frozen
class BreakNode:
    line: int


@attrs.frozen
class ContinueNode:
    line: int


Arg: TypeAlias = (
    FieldNode
    | VariableNode
    | ChainNode
    | IdentifierNode
    | DotNode
    | NilNode
    | BoolNode
    | NumberNode
    | StringNode
    | PipeNode
)
Node: TypeAlias = TextNode | ActionNode | BranchNode | TemplateNode | BreakNode | ContinueNode
