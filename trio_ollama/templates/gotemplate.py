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

import base64
import bisect
import datetime
import functools
import inspect
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

import attrs

from trio_ollama import gojson
from trio_ollama.gojson import quote as go_quote

__all__ = [
    "BUILTIN_FUNCS",
    "NO_VALUE",
    "OLLAMA_FUNCS",
    "ActionNode",
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
_MISSING: Final = object()

# ---------------------------------------------------------------------------------------------
# Parse tree
# ---------------------------------------------------------------------------------------------


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

# ---------------------------------------------------------------------------------------------
# Lexer
# ---------------------------------------------------------------------------------------------

_SPACES: Final = " \t\r\n"
_KEYWORDS: Final = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)


@attrs.frozen
class _Tok:
    kind: str
    text: str
    line: int
    value: Any = None

    def describe(self) -> str:
        if self.kind == "EOF":
            return "EOF"
        if self.kind == "KEYWORD":
            return f"<{self.text}>"
        if self.kind == "SPACE":
            return "space"
        if len(self.text) > 10:
            return go_quote(self.text[:10]) + "..."
        return go_quote(self.text)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


def _rune(c: str) -> str:
    # Go's %#U: U+0023 '#'
    code = f"U+{ord(c):04X}"
    return f"{code} '{c}'" if c.isprintable() else code


_NUMBER_RE: Final = re.compile(
    r"""[+-]?(?:
        0[xX](?:[0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?)
      | 0[oO][0-7_]*
      | 0[bB][01_]*
      | (?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?
    )i?""",
    re.VERBOSE,
)


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks: list[_Tok] = []
        self._newlines = [i for i, c in enumerate(src) if c == "\n"]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def fail(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: :{self.line_at(pos)}: {msg}")

    def emit(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        self.toks.append(_Tok(kind, text, self.line_at(pos), value))

    def skip_spaces(self, pos: int) -> int:
        while pos < len(self.src) and self.src[pos] in _SPACES:
            pos += 1
        return pos

    def at_right_trim(self, pos: int) -> bool:
        src = self.src
        return pos < len(src) and src[pos] in _SPACES and src.startswith("-}}", pos + 1)

    def lex(self) -> list[_Tok]:
        src = self.src
        pos = 0
        while True:
            start = src.find("{{", pos)
            if start < 0:
                if pos < len(src):
                    self.emit("TEXT", src[pos:], pos)
                break
            trim_left = (
                src.startswith("-", start + 2)
                and start + 3 < len(src)
                and src[start + 3] in _SPACES
            )
            text = src[pos:start]
            if trim_left:
                text = text.rstrip(_SPACES)
            if text:
                self.emit("TEXT", text, pos)
            inner = start + (4 if trim_left else 2)
            if src.startswith("/*", inner):
                pos = self.lex_comment(start, inner)
                continue
            self.emit("LEFT", "{{", start)
            pos = self.lex_action(inner)
        self.emit("EOF", "", len(src))
        return self.toks

    def lex_comment(self, start: int, inner: int) -> int:
        src = self.src
        end = src.find("*/", inner + 2)
        if end < 0:
            raise self.fail(start, "unclosed comment")
        pos = end + 2
        if self.at_right_trim(pos):
            return self.skip_spaces(pos + 4)
        if src.startswith("}}", pos):
            return pos + 2
        raise self.fail(start, "comment ends before closing delimiter")

    def lex_action(self, pos: int) -> int:
        src = self.src
        n = len(src)
        depth = 0
        while True:
            if pos >= n:
                raise self.fail(pos, "unclosed action")
            if self.at_right_trim(pos) or src.startswith("}}", pos):
                if depth:
                    raise self.fail(pos, "unclosed left paren")
                if src.startswith("}}", pos):
                    self.emit("RIGHT", "}}", pos)
                    return pos + 2
                self.emit("RIGHT", "}}", pos)
                return self.skip_spaces(pos + 4)
            c = src[pos]
            if c in _SPACES:
                start = pos
                while pos < n and src[pos] in _SPACES and not self.at_right_trim(pos):
                    pos += 1
                if pos == start:
                    # A lone space before "-}}" belongs to the trim marker.
                    continue
                self.emit("SPACE", src[start:pos], start)
            elif c == "=":
                self.emit("ASSIGN", "=", pos)
                pos += 1
            elif c == ":":
                if not src.startswith(":=", pos):
                    raise self.fail(pos, "expected :=")
                self.emit("DECLARE", ":=", pos)
                pos += 2
            elif c == "|":
                self.emit("PIPE", "|", pos)
                pos += 1
            elif c == '"':
                pos = self.lex_quote(pos)
            elif c == "`":
                end = src.find("`", pos + 1)
                if end < 0:
                    raise self.fail(pos, "unterminated raw quoted string")
                # Go drops carriage returns from raw strings.
                self.emit("STRING", src[pos : end + 1], pos, src[pos + 1 : end].replace("\r", ""))
                pos = end + 1
            elif c == "'":
                pos = self.lex_char(pos)
            elif c == "$":
                pos = self.lex_word(pos + 1, "VAR", pos)
            elif c == "." and not (pos + 1 < n and "0" <= src[pos + 1] <= "9"):
                pos = self.lex_word(pos + 1, "FIELD", pos)
            elif c in "+-." or "0" <= c <= "9":
                pos = self.lex_number(pos)
            elif _is_alnum(c):
                pos = self.lex_identifier(pos)
            elif c == "(":
                depth += 1
                self.emit("LPAREN", "(", pos)
                pos += 1
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.fail(pos, "unexpected right paren")
                self.emit("RPAREN", ")", pos)
                pos += 1
            elif c.isascii() and c.isprintable():
                self.emit("CHAR", c, pos)
                pos += 1
            else:
                raise self.fail(pos, f"unrecognized character in action: {_rune(c)}")

    def at_terminator(self, pos: int) -> bool:
        src = self.src
        if pos >= len(src):
            return True
        c = src[pos]
        return c in _SPACES or c in ".,|:()" or src.startswith("}}", pos)

    def lex_word(self, pos: int, kind: str, start: int) -> int:
        src = self.src
        end = pos
        while end < len(src) and _is_alnum(src[end]):
            end += 1
        if end == pos and kind == "FIELD":
            if not self.at_terminator(end):
                raise self.fail(end, f"bad character {_rune(src[end])}")
            self.emit("DOT", ".", start)
            return end
        if not self.at_terminator(end):
            raise self.fail(end, f"bad character {_rune(src[end])}")
        self.emit(kind, src[start:end], start)
        return end

    def lex_identifier(self, pos: int) -> int:
        src = self.src
        end = pos
        while end < len(src) and _is_alnum(src[end]):
            end += 1
        if not self.at_terminator(end):
            raise self.fail(end, f"bad character {_rune(src[end])}")
        word = src[pos:end]
        if word in _KEYWORDS:
            self.emit("KEYWORD", word, pos)
        elif word in ("true", "false"):
            self.emit("BOOL", word, pos, word == "true")
        elif word == "nil":
            self.emit("NIL", word, pos)
        else:
            self.emit("IDENT", word, pos)
        return end

    def lex_number(self, pos: int) -> int:
        m = _NUMBER_RE.match(self.src, pos)
        end = m.end() if m else pos
        if end < len(self.src) and _is_alnum(self.src[end]):
            raise self.fail(pos, f"bad number syntax: {self.src[pos : end + 1]!r}")
        text = self.src[pos:end]
        self.emit("NUMBER", text, pos, _parse_number(text, lambda msg: self.fail(pos, msg)))
        return end

    def lex_quote(self, pos: int) -> int:
        src = self.src
        i = pos + 1
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail(pos, "unterminated quoted string")
            if src[i] == "\\":
                i += 2
                continue
            if src[i] == '"':
                break
            i += 1
        body = src[pos + 1 : i]
        try:
            value = _unquote(body, '"')
        except ValueError as exc:
            raise self.fail(pos, str(exc)) from None
        self.emit("STRING", src[pos : i + 1], pos, value)
        return i + 1

    def lex_char(self, pos: int) -> int:
        src = self.src
        i = pos + 1
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail(pos, "unterminated character constant")
            if src[i] == "\\":
                i += 2
                continue
            if src[i] == "'":
                break
            i += 1
        text = src[pos : i + 1]
        try:
            value = _unquote(src[pos + 1 : i], "'")
        except ValueError:
            raise self.fail(pos, f"malformed character constant: {text}") from None
        if len(value) != 1:
            raise self.fail(pos, f"malformed character constant: {text}")
        self.emit("NUMBER", text, pos, ord(value))
        return i + 1


_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def _unquote(body: str, quote: str) -> str:
    """Go's interpreted string (or rune) literal body, escapes decoded."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            i += 2
        elif e == quote:
            out += e.encode()
            i += 2
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + size]
            if len(digits) != size or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 16)
            if e == "x":
                out.append(code)
            else:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise ValueError("invalid syntax")
                out += chr(code).encode()
            i += 2 + size
        elif e in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                raise ValueError("invalid syntax")
            code = int(digits, 8)
            if code > 255:
                raise ValueError("invalid syntax")
            out.append(code)
            i += 4
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "replace")


def _parse_number(text: str, fail: Callable[[str], TemplateError]) -> int | float:
    if text.endswith("i"):
        raise fail("complex numbers are not supported")
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    body = clean.lstrip("+-")
    try:
        if body[:2] in ("0x", "0X"):
            if any(c in body for c in ".pP"):
                return sign * float.fromhex(body)
            return sign * int(body, 16)
        if body[:2] in ("0o", "0O"):
            return sign * int(body[2:], 8)
        if body[:2] in ("0b", "0B"):
            return sign * int(body[2:], 2)
        if any(c in body for c in ".eE"):
            return sign * float(body)
        if len(body) > 1 and body.startswith("0"):
            # Go reads a leading 0 as octal.
            return sign * int(body, 8)
        return sign * int(body)
    except ValueError:
        raise fail(f"illegal number syntax: {text!r}") from None


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


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


class _Parser:
    def __init__(self, src: str, funcs: Mapping[str, Callable[..., Any]]) -> None:
        self.toks = _Lexer(src).lex()
        self.pos = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.defines: dict[str, tuple[Node, ...]] = {}

    # -- token stream --------------------------------------------------------------------------

    def fail(self, tok: _Tok, msg: str) -> TemplateError:
        return TemplateError(f"template: :{tok.line}: {msg}")

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def next(self) -> _Tok:
        tok = self.toks[self.pos]
        if tok.kind != "EOF":
            self.pos += 1
        return tok

    def backup(self) -> None:
        self.pos -= 1

    def next_non_space(self) -> _Tok:
        tok = self.next()
        while tok.kind == "SPACE":
            tok = self.next()
        return tok

    def peek_non_space(self) -> _Tok:
        tok = self.next_non_space()
        self.backup()
        return tok

    def expect(self, kind: str, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.kind != kind:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: _Tok, context: str) -> TemplateError:
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

    def template_control(self, tok: _Tok) -> TemplateNode:
        name = self.expect_string("template clause")
        pipe = None
        if self.next_non_space().kind != "RIGHT":
            self.backup()
            pipe = self.pipeline("template clause", "RIGHT")
        return TemplateNode(name, pipe, tok.line)

    def block_control(self, tok: _Tok) -> TemplateNode:
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


# ---------------------------------------------------------------------------------------------
# Values: truth, printing, JSON
# ---------------------------------------------------------------------------------------------


def _is_seq(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str | bytes | bytearray)


def _is_struct(v: Any) -> bool:
    return attrs.has(type(v)) or (
        hasattr(v, "__dict__") and not callable(v) and not isinstance(v, type)
    )


def is_true(v: Any) -> bool:
    """Go's truth: false, 0, nil, and empty strings, slices and maps are false."""
    if v is None or v is NO_VALUE:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str | bytes | bytearray | Mapping) or _is_seq(v):
        return len(v) > 0
    return True


def _type_name(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes | bytearray):
        return "[]uint8"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if _is_seq(v):
        return "[]interface {}"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |f| and the decimal point position (Go's digs)."""
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    point = len(digits) + exp
    if text == "0":
        point = 1
    return text, point


def _format_float_shortest(f: float, upper: bool = False) -> str:
    """Go's %v / strconv.FormatFloat(f, 'g', -1, 64)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    digits, point = _float_digits(f)
    exp = point - 1
    # The shortest form switches to %e when the exponent is below -4 or at least 6 (Go uses a
    # precision of 6 for that decision), so 1e6 prints as 1e+06.
    if f != 0 and (exp < -4 or exp >= 6):
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        e = "E" if upper else "e"
        return f"{neg}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{neg}{digits}{'0' * (point - len(digits))}"
    return f"{neg}{digits[:point]}.{digits[point:]}"


def fmt_v(v: Any) -> str:
    """Go's `%v` of a value (what `{{ . }}` prints)."""
    if v is NO_VALUE:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, GoStringer):
        return v.go_string()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _format_float_shortest(v)
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, Mapping):
        items = _sorted_items(v)
        return "map[" + " ".join(f"{fmt_v(k)}:{fmt_v(x)}" for k, x in items) + "]"
    if _is_seq(v):
        return "[" + " ".join(fmt_v(x) for x in v) + "]"
    if attrs.has(type(v)):
        # A class can say Go holds it by pointer, which Go prints as &{...}.
        prefix = "&" if getattr(type(v), "go_pointer", False) else ""
        fields = attrs.fields(type(v))
        return prefix + "{" + " ".join(fmt_v(getattr(v, f.name)) for f in fields) + "}"
    return str(v)


def _sort_key(k: Any) -> tuple[int, Any]:
    # Go's fmt and encoding/json sort map keys; mixed key types do not occur in Go maps.
    if isinstance(k, bool):
        return (0, k)
    if isinstance(k, int | float):
        return (1, k)
    return (2, str(k))


def _sorted_items(m: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    return sorted(m.items(), key=lambda kv: _sort_key(kv[0]))


class _UnsupportedJSON(Exception):
    pass


def go_json_value(v: Any) -> Any:
    """JSON-ready data in the shape Go's `json.Marshal` writes `v` (map keys sorted)."""
    if v is None or v is NO_VALUE:
        return None
    if isinstance(v, GoJSONMarshaler):
        return v.go_json()
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise _UnsupportedJSON(v)
        return v
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, Mapping):
        return {str(k): go_json_value(x) for k, x in _sorted_items(v)}
    if _is_seq(v):
        return [go_json_value(x) for x in v]
    if attrs.has(type(v)):
        return {f.name: go_json_value(getattr(v, f.name)) for f in attrs.fields(type(v))}
    return str(v)


def _json_func(v: Any) -> str:
    # Ollama ignores json.Marshal's error, so an unsupported value (NaN) renders as "".
    try:
        return gojson.dumps(go_json_value(v))
    except _UnsupportedJSON:
        return ""


# ---------------------------------------------------------------------------------------------
# fmt: Sprint, Sprintln, Sprintf
# ---------------------------------------------------------------------------------------------


def go_sprint(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_fmt_nil(a))
    return "".join(out)


def go_sprintln(*args: Any) -> str:
    return " ".join(_fmt_nil(a) for a in args) + "\n"


def _fmt_nil(v: Any) -> str:
    return "<nil>" if v is None or v is NO_VALUE else fmt_v(v)


@attrs.frozen
class _Spec:
    flags: str
    width: int | None
    prec: int | None


def _pad(s: str, spec: _Spec, numeric: bool = False) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    fill = spec.width - len(s)
    if "-" in spec.flags:
        return s + " " * fill
    if "0" in spec.flags and numeric:
        sign = s[0] if s[:1] in ("-", "+", " ") else ""
        return sign + "0" * fill + s[len(sign) :]
    return " " * fill + s


def _bad_verb(verb: str, v: Any) -> str:
    if v is None or v is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_type_name(v)}={fmt_v(v)})"


def _fmt_int(v: int, verb: str, spec: _Spec) -> str:
    sign = "-" if v < 0 else ("+" if "+" in spec.flags else (" " if " " in spec.flags else ""))
    n = abs(v)
    match verb:
        case "d" | "v":
            body = str(n)
        case "x":
            body = ("0x" if "#" in spec.flags else "") + format(n, "x")
        case "X":
            body = ("0X" if "#" in spec.flags else "") + format(n, "X")
        case "o":
            body = ("0" if "#" in spec.flags else "") + format(n, "o")
        case "O":
            body = "0o" + format(n, "o")
        case "b":
            body = format(n, "b")
        case "c":
            return _pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", spec)
        case "q":
            return _pad(
                "'" + go_quote(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd")[1:-1] + "'", spec
            )
        case "U":
            return _pad(f"U+{v:04X}", spec)
        case _:
            return _bad_verb(verb, v)
    if spec.prec is not None and len(body) < spec.prec:
        body = "0" * (spec.prec - len(body)) + body
    return _pad(sign + body, spec, numeric=spec.prec is None)


def _fmt_float(v: float, verb: str, spec: _Spec) -> str:
    if math.isnan(v) or math.isinf(v):
        return _pad("NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf"), spec)
    sign = "+" if "+" in spec.flags and v >= 0 else (" " if " " in spec.flags and v >= 0 else "")
    match verb:
        case "v" | "g" | "G":
            if spec.prec is None:
                body = _format_float_shortest(v, upper=verb == "G")
            else:
                body = format(v, f".{max(spec.prec, 1)}{'G' if verb == 'G' else 'g'}")
        case "e" | "E" | "f" | "F":
            prec = 6 if spec.prec is None else spec.prec
            body = format(v, f".{prec}{verb}")
        case _:
            return _bad_verb(verb, v)
    return _pad(sign + body, spec, numeric=True)


def _fmt_str(s: str, verb: str, spec: _Spec) -> str:
    match verb:
        case "s" | "v":
            body = s if spec.prec is None else s[: spec.prec]
        case "q":
            if "#" in spec.flags and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                body = "`" + s + "`"
            else:
                body = go_quote(s, ascii_only="+" in spec.flags)
        case "x" | "X":
            data = s.encode()
            body = data.hex() if verb == "x" else data.hex().upper()
        case _:
            return _bad_verb(verb, s)
    return _pad(body, spec)


def _fmt_arg(v: Any, verb: str, spec: _Spec) -> str:
    if verb == "T":
        return _pad(_type_name(v), spec)
    if v is None or v is NO_VALUE:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(verb, v)
    if isinstance(v, GoStringer) and verb in "vsxXq":
        return _fmt_str(v.go_string(), verb, spec)
    if isinstance(v, bool):
        return _pad("true" if v else "false", spec) if verb in "tv" else _bad_verb(verb, v)
    if isinstance(v, int):
        return _fmt_int(v, verb, spec)
    if isinstance(v, float):
        return _fmt_float(v, verb, spec)
    if isinstance(v, str):
        return _fmt_str(v, verb, spec)
    if isinstance(v, bytes | bytearray):
        if verb in "sqxX":
            return _fmt_str(bytes(v).decode("utf-8", "replace"), verb, spec)
        return "[" + " ".join(_fmt_arg(b, verb, spec) for b in v) + "]"
    if isinstance(v, Mapping):
        items = _sorted_items(v)
        inner = " ".join(f"{_fmt_arg(k, verb, spec)}:{_fmt_arg(x, verb, spec)}" for k, x in items)
        return "map[" + inner + "]"
    if _is_seq(v):
        return "[" + " ".join(_fmt_arg(x, verb, spec) for x in v) + "]"
    if verb == "v":
        return _pad(fmt_v(v), spec)
    return _bad_verb(verb, v)


def go_sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs (%v %s %d %q %x %X %o %b %c %e %f %g %t %T %%)."""
    out: list[str] = []
    i = 0
    n = len(fmt)
    argi = 0
    reordered = False
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = ""
        while i < n and fmt[i] in "+-# 0":
            flags += fmt[i]
            i += 1

        def arg_index(pos: int) -> int:
            nonlocal argi, reordered
            if pos < n and fmt[pos] == "[":
                close = fmt.find("]", pos)
                if close > pos + 1 and fmt[pos + 1 : close].isdigit():
                    argi = int(fmt[pos + 1 : close]) - 1
                    reordered = True
                    return close + 1
            return pos

        def number(pos: int) -> tuple[int | None, int]:
            nonlocal argi
            if pos < n and fmt[pos] == "*":
                if argi < len(args) and isinstance(args[argi], int):
                    value = int(args[argi])
                    argi += 1
                    return value, pos + 1
                argi += 1
                return None, pos + 1
            start = pos
            while pos < n and fmt[pos].isdigit():
                pos += 1
            return (int(fmt[start:pos]) if pos > start else None), pos

        i = arg_index(i)
        width, i = number(i)
        prec: int | None = None
        if i < n and fmt[i] == ".":
            i = arg_index(i + 1)
            prec, i = number(i)
            if prec is None:
                prec = 0
        i = arg_index(i)
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if width is not None and width < 0:
            flags += "-"
            width = -width
        if argi >= len(args) or argi < 0:
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_arg(args[argi], verb, _Spec(flags, width, prec)))
        argi += 1
    if not reordered and argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None or a is NO_VALUE else f"{_type_name(a)}={fmt_v(a)}"
            for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Built-in functions
# ---------------------------------------------------------------------------------------------


class _FuncError(Exception):
    pass


def _kind(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(arg1: Any, *rest: Any) -> bool:
    if not rest:
        raise _FuncError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in rest:
        k2 = _kind(arg)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise _FuncError("incompatible types for comparison")
            continue
        if k1 == "invalid":
            return True
        if k1 == "other" and (
            isinstance(arg1, Mapping | bytes | bytearray)
            or _is_seq(arg1)
            or isinstance(arg, Mapping | bytes | bytearray)
            or _is_seq(arg)
        ):
            raise _FuncError(f"non-comparable type {fmt_v(arg1)}: {_type_name(arg1)}")
        if arg1 == arg:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    ka, kb = _kind(a), _kind(b)
    if ka in ("invalid", "bool", "other") or kb in ("invalid", "bool", "other"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return a, b


def _lt(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x < y)


def _le(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x <= y)


def _gt(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x > y)


def _ge(a: Any, b: Any) -> bool:
    x, y = _ordered(a, b)
    return bool(x >= y)


def _not(v: Any) -> bool:
    return not is_true(v)


def _len(v: Any) -> int:
    if v is None or v is NO_VALUE:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, bytes | bytearray | Mapping) or _is_seq(v):
        return len(v)
    raise _FuncError(f"len of type {_type_name(v)}")


def _index_arg(i: Any, cap: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise _FuncError(f"cannot index slice/array with type {_type_name(i)}")
    if i < 0 or i > cap:
        raise _FuncError(f"index out of range: {i}")
    return i


def _index(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise _FuncError("index of untyped nil")
    for idx in indexes:
        if item is None or item is NO_VALUE:
            raise _FuncError("index of untyped nil")
        if isinstance(item, Mapping):
            item = item.get(idx)
        elif isinstance(item, str):
            data = item.encode()
            item = data[_index_arg(idx, len(data) - 1)] if data else _index_arg(idx, -1)
        elif isinstance(item, bytes | bytearray) or _is_seq(item):
            if not item:
                raise _FuncError(f"index out of range: {idx}")
            item = item[_index_arg(idx, len(item) - 1)]
        else:
            raise _FuncError(f"can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None or item is NO_VALUE:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        data: Any = item.encode()
    elif isinstance(item, bytes | bytearray) or _is_seq(item):
        data = item
    else:
        raise _FuncError(f"can't slice item of type {_type_name(item)}")
    cap = len(data)
    idx = [0, len(data), cap]
    for n, i in enumerate(indexes):
        idx[n] = _index_arg(i, cap)
    if idx[0] > idx[1]:
        raise _FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    result = data[idx[0] : idx[1]]
    if isinstance(item, str):
        return bytes(result).decode("utf-8", "replace")
    if isinstance(item, list | tuple | bytes | bytearray):
        return result
    return list(result)


def _eval_args_text(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return go_sprint(*args)


def _html(*args: Any) -> str:
    s = _eval_args_text(args)
    table = {"<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", '"': "&#34;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in s)


def _js(*args: Any) -> str:
    s = _eval_args_text(args)
    out: list[str] = []
    for c in s:
        if c == "\\":
            out.append("\\\\")
        elif c in "'\"":
            out.append("\\" + c)
        elif c in "<>&=`" or ord(c) < 0x20 or not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args_text(args), safe="")


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise _FuncError(f"wrong type for value; expected string; got {_type_name(fmt)}")
    return go_sprintf(fmt, *[None if a is NO_VALUE else a for a in args])


def _call(*args: Any) -> Any:
    raise _FuncError("call is not supported")


# `and` and `or` are evaluated lazily by the executor; these entries only make the names known.
def _and(*args: Any) -> Any:
    for a in args:
        if not is_true(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if is_true(a):
            return a
    return args[-1]


BUILTIN_FUNCS: Final[Mapping[str, Callable[..., Any]]] = {
    "and": _and,
    "or": _or,
    "not": _not,
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": go_sprint,
    "printf": _printf,
    "println": go_sprintln,
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "call": _call,
}


def _current_date(*_args: Any) -> str:
    return datetime.date.today().isoformat()


def _yesterday_date(*_args: Any) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


def _to_typescript_type(v: Any) -> str:
    method = getattr(v, "to_typescript_type", None)
    if callable(method):
        return str(method())
    return "any"


OLLAMA_FUNCS: Final[Mapping[str, Callable[..., Any]]] = {
    **BUILTIN_FUNCS,
    "json": _json_func,
    "currentDate": _current_date,
    "yesterdayDate": _yesterday_date,
    "toTypeScriptType": _to_typescript_type,
}

# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------


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
    if name[:1].isupper() and _is_struct(receiver):
        if attrs.has(type(receiver)):
            attr = _attrs_field(type(receiver), name)
        else:
            fields = vars(receiver)
            attr = name if name in fields else (_snake(name) if _snake(name) in fields else None)
        if attr is not None:
            if has_args:
                raise _ExecFail(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, attr)
    raise _ExecFail(f"can't evaluate field {name} in type {_type_name(receiver)}")


_SIGNATURES: dict[Callable[..., Any], inspect.Signature] = {}


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    if fn not in _SIGNATURES:
        _SIGNATURES[fn] = inspect.signature(fn)
    return _SIGNATURES[fn]


class _State:
    def __init__(self, template: GoTemplate) -> None:
        self.template = template
        self.vars: list[list[Any]] = []
        self.out: list[str] = []
        self.depth = 0

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

    def walk(self, dot: Any, node: Node) -> None:
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            value = self.guarded(node.line, node.pipe, lambda: self.eval_pipeline(dot, node.pipe))
            if not node.pipe.decl:
                self.out.append(fmt_v(value))
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
            for key, elem in _sorted_items(value):
                iterated = True
                if not one(key, elem):
                    break
        elif isinstance(value, bytes | bytearray) or _is_seq(value):
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
        body = self.template.defines.get(node.name)
        if body is None:
            raise TemplateExecError(
                f'template: :{node.line}: executing "" at <{{{{template "{node.name}"}}}}>: '
                f'template "{node.name}" not defined'
            )
        value: Any = None
        if node.pipe is not None:
            pipe = node.pipe
            value = self.guarded(node.line, pipe, lambda: self.eval_pipeline(dot, pipe))
        if self.depth >= 1000:
            raise TemplateExecError(f"template: :{node.line}: exceeded maximum template depth")
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
        value: Any = _MISSING
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
        if len(args) > 1 or final is not _MISSING:
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
        has_args = len(args) > 1 or final is not _MISSING
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
        fn = self.template.funcs.get(name)
        if fn is None:
            raise _ExecFail(f'"{name}" is not a defined function')
        values = [self.eval_arg(dot, a) for a in args[1:]]
        if final is not _MISSING:
            values.append(final)
        values = [None if v is NO_VALUE else v for v in values]
        try:
            _signature(fn).bind(*values)
        except TypeError:
            raise _ExecFail(f"wrong number of args for {name}: got {len(values)}") from None
        try:
            return fn(*values)
        except _FuncError as exc:
            raise _ExecFail(f"error calling {name}: {exc}") from None

    def eval_and_or(self, dot: Any, name: str, args: tuple[Arg, ...], final: Any) -> Any:
        count = len(args) + (final is not _MISSING)
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
            return self.eval_fields(dot, node.idents, (node,), _MISSING)
        if isinstance(node, VariableNode):
            return self.eval_variable(dot, node, (node,), _MISSING)
        if isinstance(node, PipeNode):
            return self.eval_pipeline(dot, node)
        if isinstance(node, IdentifierNode):
            return self.eval_function(dot, node.name, (node,), _MISSING)
        if isinstance(node, ChainNode):
            return self.eval_chain(dot, node, (node,), _MISSING)
        if isinstance(node, BoolNode):
            return node.value
        if isinstance(node, NumberNode):
            return node.value
        return node.value


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


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
        state = _State(self)
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
    root, defines = _Parser(source, table).parse()
    return GoTemplate(source, root, defines, table)
