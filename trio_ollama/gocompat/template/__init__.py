"""Go `text/template`: the part that Ollama's chat templates use, parsed and rendered in Python.

Values follow Go's rules as closely as Python allows:

- a `Mapping` is a Go map: `.Key` looks the key up, a missing key is nil;
- an attrs instance (or any object with a `__dict__`) is a Go struct: `.FieldName` reads the
  attribute whose snake_case name matches (`.ToolCallID` reads `tool_call_id`), and a name that
  does not exist is an error, as it is in Go;
- any other `Sequence` (not `str`/`bytes`) is a slice, `bytes` is a `[]byte`;
- an object with a `go_string()` method is a Go `fmt.Stringer`, and one with `go_json()` is a
  `json.Marshaler` (it returns JSON-ready Python data, in the order Go would write it).

`parse` raises `TemplateError` for what Go's parser rejects, with Go's wording (`template: :1:
unclosed action`); rendering errors raise `TemplateExecError`, a subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from trio_ollama.gocompat.template.exec import State
from trio_ollama.gocompat.template.fmt import go_sprint, go_sprintf
from trio_ollama.gocompat.template.funcs import BUILTIN_FUNCS, OLLAMA_FUNCS
from trio_ollama.gocompat.template.nodes import (
    NO_VALUE,
    ActionNode,
    Arg,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    ContinueNode,
    DotNode,
    FieldNode,
    GoJSONMarshaler,
    GoStringer,
    IdentifierNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateError,
    TemplateExecError,
    TemplateNode,
    TextNode,
    VariableNode,
)
from trio_ollama.gocompat.template.parser import Parser
from trio_ollama.gocompat.template.values import go_json_value

__all__ = [
    "BUILTIN_FUNCS",
    "NO_VALUE",
    "OLLAMA_FUNCS",
    "ActionNode",
    "Arg",
    "BoolNode",
    "BranchNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "ContinueNode",
    "DotNode",
    "FieldNode",
    "GoJSONMarshaler",
    "GoStringer",
    "GoTemplate",
    "IdentifierNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "StringNode",
    "TemplateError",
    "TemplateExecError",
    "TemplateNode",
    "TextNode",
    "VariableNode",
    "go_json_value",
    "go_sprint",
    "go_sprintf",
    "parse",
]


def _identifiers(nodes: tuple[Node, ...]) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, ActionNode):
            yield from _pipe_identifiers(node.pipe)
        elif isinstance(node, BranchNode):
            yield from _pipe_identifiers(node.pipe)
            yield from _identifiers(node.list)
            if node.else_list is not None:
                yield from _identifiers(node.else_list)
        elif isinstance(node, TemplateNode) and node.pipe is not None:
            yield from _pipe_identifiers(node.pipe)


def _pipe_identifiers(pipe: PipeNode) -> Iterator[str]:
    for cmd in pipe.cmds:
        for arg in cmd.args:
            if isinstance(arg, FieldNode | VariableNode):
                yield from arg.idents
            elif isinstance(arg, PipeNode):
                yield from _pipe_identifiers(arg)


@attrs.frozen
class GoTemplate:
    """A parsed template. `execute(data)` renders it with `data` as both `.` and `$`."""

    source: str
    root: tuple[Node, ...]
    defines: Mapping[str, tuple[Node, ...]]
    funcs: Mapping[str, Callable[..., Any]] = attrs.field(repr=False)

    def execute(self, data: Any) -> str:
        state = State(self.defines, self.funcs)
        state.push("$", data)
        state.walk_list(data, self.root)
        return "".join(state.out)

    def identifiers(self) -> list[str]:
        """Field and variable names the template mentions, in order (what Ollama's `Vars` scans)."""
        names = list(_identifiers(self.root))
        for body in self.defines.values():
            names.extend(_identifiers(body))
        return names

    def with_root(self, root: tuple[Node, ...]) -> GoTemplate:
        return attrs.evolve(self, root=root)


def parse(source: str, funcs: Mapping[str, Callable[..., Any]] | None = None) -> GoTemplate:
    """Parse Go template text. `funcs` defaults to Go's built-ins plus Ollama's (`json`, ...)."""
    table = OLLAMA_FUNCS if funcs is None else {**BUILTIN_FUNCS, **funcs}
    root, defines = Parser(source, table).parse()
    return GoTemplate(source, root, defines, table)
