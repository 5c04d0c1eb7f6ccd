"""Go's template parser: the tree of `nodes.py` from the lexer's items, with Go's error texts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from trio_ollama.gocompat.template.lexer import Lexer, Token
from trio_ollama.gocompat.template.nodes import (
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
    StringNode,
    TemplateError,
    TemplateNode,
    TextNode,
    VariableNode,
)


@attrs.frozen
class _End:
    line: int

    def __str__(self) -> str:
        return "{{end}}"


@attrs.frozen
class _Else:
    line: int
    pending: str | None  # "if"/"with" when the else is `{{else if`/`{{else with`

    def __str__(self) -> str:
        return "{{else}}"


_NON_EXECUTABLE: Final = (BoolNode, DotNode, NilNode, NumberNode, StringNode)
_OPERAND_START: Final = frozenset(
    {"BOOL", "DOT", "FIELD", "IDENT", "NUMBER", "NIL", "STRING", "VAR", "LPAREN"}
)


class Parser:
    def __init__(self, src: str, funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.toks = Lexer(src).lex()
        self.pos = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defines: dict[str, tuple[Node, ...]] = {}

    # -- token stream --------------------------------------------------------------------------

    def fail(self, tok: Token, msg: str) -> TemplateError:
        return TemplateError(f"template: :{tok.line}: {msg}")

    def peek(self) -> Token:
        return self.toks[self.pos]

    def next(self) -> Token:
        tok = self.toks[self.pos]
        if tok.kind != "EOF":
            self.pos += 1
        return tok

    def backup(self) -> None:
        self.pos -= 1

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind == "SPACE":
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind != kind:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> TemplateError:
        if tok.kind == "EOF":
            return self.fail(tok, "unexpected EOF")
        return self.fail(tok, f"unexpected {tok.describe()} in {context}")

    # -- structure -----------------------------------------------------------------------------

    def parse(self) -> tuple[tuple[Node, ...], dict[str, tuple[Node, ...]]]:
        root: list[Node] = []
        while self.peek().kind != "EOF":
            if self.peek().kind == "LEFT":
                save = self.pos
                self.next()
                tok = self.next_non_space()
                if tok.kind == "KEYWORD" and tok.text == "define":
                    self.parse_define()
                    continue
                self.pos = save
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                raise TemplateError(f"template: :{node.line}: unexpected {node}")
            root.append(node)
        return tuple(root), self.defines

    def parse_define(self) -> None:
        name = self.expect_string("define clause")
        self.expect("RIGHT", "define clause")
        saved, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved
        if not isinstance(end, _End):
            raise TemplateError(f"template: :{end.line}: unexpected {end} in end")
        self.defines[name] = body

    def expect_string(self, context: str) -> str:
        tok = self.next_non_space()
        if tok.kind != "STRING":
            raise self.unexpected(tok, context)
        value: str = tok.value
        return value

    def item_list(self) -> tuple[tuple[Node, ...], _End | _Else]:
        nodes: list[Node] = []
        while self.peek_non_space().kind != "EOF":
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return tuple(nodes), node
            nodes.append(node)
        raise self.fail(self.peek(), "unexpected EOF")

    def text_or_action(self) -> Node | _End | _Else:
        tok = self.next_non_space()
        if tok.kind == "TEXT":
            return TextNode(tok.text)
        if tok.kind == "LEFT":
            return self.action()
        raise self.unexpected(tok, "input")

    def action(self) -> Node | _End | _Else:
        tok = self.next_non_space()
        if tok.kind == "KEYWORD":
            match tok.text:
                case "block":
                    return self.block_control(tok)
                case "break" | "continue":
                    if self.range_depth == 0:
                        raise self.fail(tok, f"{{{{{tok.text}}}}} outside {{{{range}}}}")
                    after = self.next_non_space()
                    if after.kind != "RIGHT":
                        raise self.unexpected(after, f"{{{{{tok.text}}}}}")
                    return BreakNode(tok.line) if tok.text == "break" else ContinueNode(tok.line)
                case "else":
                    peek = self.peek_non_space()
                    if peek.kind == "KEYWORD" and peek.text in ("if", "with"):
                        return _Else(tok.line, peek.text)
                    self.expect("RIGHT", "else")
                    return _Else(tok.line, None)
                case "end":
                    self.expect("RIGHT", "end")
                    return _End(tok.line)
                case "if" | "range" | "with":
                    return self.control(tok.text, tok.line)
                case "template":
                    return self.template_control(tok)
        self.backup()
        return ActionNode(self.pipeline("command", "RIGHT"), tok.line)

    def control(self, kind: Literal["if", "range", "with"], line: int) -> BranchNode:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "RIGHT")
        if kind == "range":
            self.range_depth += 1
        body, term = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_list: tuple[Node, ...] | None = None
        if isinstance(term, _Else):
            if term.pending is not None and term.pending == kind:
                # `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer `{{end}}`.
                self.next_non_space()
                else_list = (self.control(kind, term.line),)
            else:
                if term.pending is not None:
                    raise self.unexpected(self.next_non_space(), "input")
                else_list, end = self.item_list()
                if not isinstance(end, _End):
                    raise TemplateError(f"template: :{end.line}: expected end; found {end}")
        del self.vars[mark:]
        return BranchNode(kind, pipe, body, else_list, line)

    def template_control(self, tok: Token) -> TemplateNode:
        name = self.expect_string("template clause")
        pipe = None
        if self.next_non_space().kind != "RIGHT":
            self.backup()
            pipe = self.pipeline("template clause", "RIGHT")
        return TemplateNode(name, pipe, tok.line)

    def block_control(self, tok: Token) -> TemplateNode:
        name = self.expect_string("block clause")
        pipe = self.pipeline("block clause", "RIGHT")
        saved, self.vars = self.vars, ["$"]
        saved_depth, self.range_depth = self.range_depth, 0
        body, end = self.item_list()
        self.vars, self.range_depth = saved, saved_depth
        if not isinstance(end, _End):
            raise TemplateError(f"template: :{end.line}: unexpected {end} in block clause")
        self.defines[name] = body
        return TemplateNode(name, pipe, tok.line)

    # -- pipelines -----------------------------------------------------------------------------

    def pipeline(self, context: str, end: str) -> PipeNode:
        start = self.peek_non_space()
        decl: list[str] = []
        is_assign = False
        while True:
            save = self.pos
            var = self.next_non_space()
            if var.kind != "VAR":
                self.pos = save
                break
            after = self.peek_non_space()
            if after.kind in ("ASSIGN", "DECLARE"):
                self.next_non_space()
                is_assign = after.kind == "ASSIGN"
                decl.append(var.text)
                self.vars.append(var.text)
                break
            if after.kind == "CHAR" and after.text == ",":
                self.next_non_space()
                decl.append(var.text)
                self.vars.append(var.text)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in ("VAR", "RIGHT", "RPAREN"):
                        continue
                    raise self.fail(after, "range can only initialize variables")
                raise self.fail(after, f"too many declarations in {context}")
            self.pos = save
            break
        cmds: list[CommandNode] = []
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                if not cmds:
                    raise self.fail(tok, f"missing value for {context}")
                for i, cmd in enumerate(cmds[1:]):
                    if isinstance(cmd.args[0], _NON_EXECUTABLE):
                        raise self.fail(tok, f"non executable command in pipeline stage {i + 2}")
                return PipeNode(tuple(decl), is_assign, tuple(cmds), start.line)
            if tok.kind in _OPERAND_START:
                self.backup()
                cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def command(self) -> CommandNode:
        args: list[Arg] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind == "SPACE":
                continue
            if tok.kind in ("RIGHT", "RPAREN"):
                self.backup()
            elif tok.kind != "PIPE":
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.fail(self.peek(), "empty command")
        return CommandNode(tuple(args))

    def operand(self) -> Arg | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind != "FIELD":
            return node
        fields: list[str] = []
        while self.peek().kind == "FIELD":
            fields.append(self.next().text[1:])
        if isinstance(node, FieldNode):
            return FieldNode(node.idents + tuple(fields))
        if isinstance(node, VariableNode):
            return VariableNode(node.idents + tuple(fields))
        if isinstance(node, _NON_EXECUTABLE):
            raise self.fail(self.peek(), f"unexpected . after term {str(node)!r}")
        return ChainNode(node, tuple(fields))

    def term(self) -> Arg | None:
        tok = self.next_non_space()
        match tok.kind:
            case "IDENT":
                if tok.text not in self.funcs:
                    raise self.fail(tok, f'function "{tok.text}" not defined')
                return IdentifierNode(tok.text)
            case "DOT":
                return DotNode()
            case "NIL":
                return NilNode()
            case "VAR":
                if tok.text not in self.vars:
                    raise self.fail(tok, f'undefined variable "{tok.text}"')
                return VariableNode((tok.text,))
            case "FIELD":
                return FieldNode((tok.text[1:],))
            case "BOOL":
                return BoolNode(bool(tok.value))
            case "NUMBER":
                return NumberNode(tok.value, tok.text)
            case "STRING":
                return StringNode(tok.value, tok.text)
            case "LPAREN":
                return self.pipeline("parenthesized pipeline", "RPAREN")
        self.backup()
        return None
