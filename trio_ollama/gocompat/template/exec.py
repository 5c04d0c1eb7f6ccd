"""Executing a parsed template: Go's evaluation of pipelines, fields, variables and control flow."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from trio_ollama.gocompat.template.funcs import FuncError
from trio_ollama.gocompat.template.nodes import (
    MISSING,
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
    IdentifierNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    TemplateExecError,
    TemplateNode,
    TextNode,
    VariableNode,
)
from trio_ollama.gocompat.template.values import (
    fmt_v,
    is_seq,
    is_struct,
    is_true,
    sorted_items,
    type_name,
)

# Go stops a template that calls itself at 100,000 levels; each level here is a few Python
# frames, so the limit is lower: well past any real template, well short of Python's recursion.
MAX_EXEC_DEPTH = 100
# Go's templates run as long as they like; a request may bring its own (`{{ range 20000000 }}`),
# so here they stop after this many nodes: about a second, and 20 times what rendering a
# 1,000-message chat takes.
MAX_EXEC_STEPS = 1_000_000
# ... nor write without end: a prompt larger than this could not even reach a runner.
MAX_OUTPUT = 64 * 1024 * 1024


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ExecFail(Exception):
    pass


@functools.cache
def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


_ATTRS_FIELDS: dict[tuple[type, str], str | None] = {}


def _attrs_field(cls: type, name: str) -> str | None:
    key = (cls, name)
    if key not in _ATTRS_FIELDS:
        names = {f.name for f in attrs.fields(cls)}
        snake = _snake(name)
        _ATTRS_FIELDS[key] = name if name in names else (snake if snake in names else None)
    return _ATTRS_FIELDS[key]


def _lookup_field(receiver: Any, name: str, has_args: bool) -> Any:
    if receiver is NO_VALUE:
        return NO_VALUE
    if receiver is None:
        raise _ExecFail(f"nil pointer evaluating interface {{}}.{name}")
    if isinstance(receiver, Mapping):
        if has_args:
            raise _ExecFail(f"{name} is not a method but has arguments")
        return receiver.get(name)
    # Only exported (capitalised) names are fields, as in Go.
    if name[:1].isupper() and is_struct(receiver):
        if attrs.has(type(receiver)):
            attr = _attrs_field(type(receiver), name)
        else:
            fields = vars(receiver)
            attr = name if name in fields else (_snake(name) if _snake(name) in fields else None)
        if attr is not None:
            if has_args:
                raise _ExecFail(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, attr)
    raise _ExecFail(f"can't evaluate field {name} in type {type_name(receiver)}")


_SIGNATURES: dict[Callable[..., Any], inspect.Signature] = {}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    if fn not in _SIGNATURES:
        _SIGNATURES[fn] = inspect.signature(fn)
    return _SIGNATURES[fn]


class State:
    def __init__(
        self,
        defines: Mapping[str, tuple[Node, ...]],
        funcs: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.defines = defines
        self.funcs = funcs
        self.vars: list[list[Any]] = []
        self.out: list[str] = []
        self.out_size = 0
        self.depth = 0
        self.steps = 0

    # -- variables -----------------------------------------------------------------------------

    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise _ExecFail(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[-n][1] = value

    def var(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise _ExecFail(f"undefined variable: {name}")

    # -- walking -------------------------------------------------------------------------------

    def walk_list(self, dot: Any, nodes: tuple[Node, ...]) -> None:
        for node in nodes:
            self.walk(dot, node)

    def emit(self, text: str) -> None:
        self.out_size += len(text)
        if self.out_size > MAX_OUTPUT:
            raise TemplateExecError(f"template: output exceeds {MAX_OUTPUT} characters")
        self.out.append(text)

    def walk(self, dot: Any, node: Node) -> None:
        self.steps += 1
        if self.steps > MAX_EXEC_STEPS:
            raise TemplateExecError(
                f"template: exceeded the budget of {MAX_EXEC_STEPS} steps (a loop too long?)"
            )
        if isinstance(node, TextNode):
            self.emit(node.text)
        elif isinstance(node, ActionNode):
            value = self.guarded(node.line, node.pipe, lambda: self.eval_pipeline(dot, node.pipe))
            if not node.pipe.decl:
                self.emit(fmt_v(value))
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue

    def guarded(self, line: int, where: object, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _ExecFail as exc:
            raise TemplateExecError(
                f'template: :{line}: executing "" at <{where}>: {exc}'
            ) from None

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        value = self.guarded(node.line, node.pipe, lambda: self.eval_pipeline(dot, node.pipe))
        if is_true(value):
            self.walk_list(value if node.kind == "with" else dot, node.list)
        elif node.else_list is not None:
            self.walk_list(dot, node.else_list)
        del self.vars[mark:]

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        outer = len(self.vars)
        pipe = node.pipe
        value = self.guarded(node.line, pipe, lambda: self.eval_pipeline(dot, pipe))
        mark = len(self.vars)

        def one(index: Any, elem: Any) -> bool:
            # Returns False on {{break}}.
            if pipe.decl:
                if pipe.is_assign:
                    self.set_var(pipe.decl[0], index if len(pipe.decl) > 1 else elem)
                else:
                    self.set_top_var(1, elem)
            if len(pipe.decl) > 1:
                if pipe.is_assign:
                    self.set_var(pipe.decl[1], elem)
                else:
                    self.set_top_var(2, index)
            try:
                self.walk_list(elem, node.list)
            except _Continue:
                pass
            except _Break:
                return False
            finally:
                del self.vars[mark:]
            return True

        iterated = False
        if isinstance(value, Mapping):
            for key, elem in sorted_items(value):
                iterated = True
                if not one(key, elem):
                    break
        elif isinstance(value, bytes | bytearray) or is_seq(value):
            for index, elem in enumerate(value):
                iterated = True
                if not one(index, elem):
                    break
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(pipe.decl) > 1:
                raise TemplateExecError(
                    f'template: :{node.line}: executing "" at <{pipe}>: '
                    f"can't use {value} to iterate over more than one variable"
                )
            for index in range(value):
                iterated = True
                if not one(index, index):
                    break
        elif value is not None and value is not NO_VALUE:
            raise TemplateExecError(
                f'template: :{node.line}: executing "" at <{pipe}>: '
                f"range can't iterate over {fmt_v(value)}"
            )
        if not iterated and node.else_list is not None:
            self.walk_list(dot, node.else_list)
        del self.vars[outer:]

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        body = self.defines.get(node.name)
        if body is None:
            raise TemplateExecError(
                f'template: :{node.line}: executing "" at <{{{{template "{node.name}"}}}}>: '
                f'template "{node.name}" not defined'
            )
        value: Any = None
        if node.pipe is not None:
            pipe = node.pipe
            value = self.guarded(node.line, pipe, lambda: self.eval_pipeline(dot, pipe))
        if self.depth >= MAX_EXEC_DEPTH:
            raise TemplateExecError(
                f"template: :{node.line}: exceeded maximum template depth ({MAX_EXEC_DEPTH})"
            )
        saved = self.vars
        self.vars = [["$", value]]
        self.depth += 1
        try:
            self.walk_list(value, body)
        finally:
            self.depth -= 1
            self.vars = saved

    # -- evaluation ----------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        if value is None:
            # A nil interface loses its type once a pipeline produced it (Go's "<no value>").
            value = NO_VALUE
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.push(name, value)
        return value

    def not_a_function(self, args: tuple[Arg, ...], final: Any) -> None:
        if len(args) > 1 or final is not MISSING:
            raise _ExecFail(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_fields(dot, first.idents, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first.name, cmd.args, final)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, NilNode):
            raise _ExecFail("nil is not a command")
        return self.eval_arg(dot, first)

    def eval_fields(
        self, receiver: Any, idents: tuple[str, ...], args: tuple[Arg, ...], final: Any
    ) -> Any:
        for ident in idents[:-1]:
            receiver = _lookup_field(receiver, ident, False)
        has_args = len(args) > 1 or final is not MISSING
        return _lookup_field(receiver, idents[-1], has_args)

    def eval_variable(self, dot: Any, node: VariableNode, args: tuple[Arg, ...], final: Any) -> Any:
        value = self.var(node.idents[0])
        if len(node.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_fields(value, node.idents[1:], args, final)

    def eval_chain(self, dot: Any, node: ChainNode, args: tuple[Arg, ...], final: Any) -> Any:
        if isinstance(node.node, NilNode):
            raise _ExecFail(f"indirection through explicit nil in {node}")
        value = self.eval_arg(dot, node.node)
        return self.eval_fields(value, node.fields, args, final)

    def eval_function(self, dot: Any, name: str, args: tuple[Arg, ...], final: Any) -> Any:
        if name in ("and", "or"):
            return self.eval_and_or(dot, name, args[1:], final)
        fn = self.funcs.get(name)
        if fn is None:
            raise _ExecFail(f'"{name}" is not a defined function')
        values = [self.eval_arg(dot, a) for a in args[1:]]
        if final is not MISSING:
            values.append(final)
        values = [None if v is NO_VALUE else v for v in values]
        try:
            _signature(fn).bind(*values)
        except TypeError:
            raise _ExecFail(f"wrong number of args for {name}: got {len(values)}") from None
        try:
            return fn(*values)
        except FuncError as exc:
            raise _ExecFail(f"error calling {name}: {exc}") from None

    def eval_and_or(self, dot: Any, name: str, args: tuple[Arg, ...], final: Any) -> Any:
        count = len(args) + (final is not MISSING)
        if count == 0:
            raise _ExecFail(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        for i in range(count):
            value = self.eval_arg(dot, args[i]) if i < len(args) else final
            if value is NO_VALUE:
                value = None
            if is_true(value) == (name == "or"):
                return value
        return value

    def eval_arg(self, dot: Any, node: Arg) -> Any:
        if isinstance(node, DotNode):
            return dot
        if isinstance(node, NilNode):
            return None
        if isinstance(node, FieldNode):
            return self.eval_fields(dot, node.idents, (node,), MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, (node,), MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node.name, (node,), MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, (node,), MISSING)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return node.value
        return node.value
