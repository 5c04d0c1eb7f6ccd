"""Go's template lexer: items from text, with Go's rules for delimiters, trim markers,
numbers and quoted strings."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from typing import Any, Final

import attrs

from trio_ollama.gocompat.gojson import quote as go_quote
from trio_ollama.gocompat.template.nodes import TemplateError

_SPACES: Final = " \t\r\n"
_KEYWORDS: Final = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)


@attrs.frozen
class Token:
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


class Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks: list[Token] = []
        self._newlines = [i for i, c in enumerate(src) if c == "\n"]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def fail(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: :{self.line_at(pos)}: {msg}")

    def emit(self, kind: str, text: str, pos: int, value: Any = None) -> None:
        self.toks.append(Token(kind, text, self.line_at(pos), value))

    def skip_spaces(self, pos: int) -> int:
        while pos < len(self.src) and self.src[pos] in _SPACES:
            pos += 1
        return pos

    def at_right_trim(self, pos: int) -> bool:
        src = self.src
        return pos < len(src) and src[pos] in _SPACES and src.startswith("-}}", pos + 1)

    def lex(self) -> list[Token]:
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

    def _closing(self, pos: int, quote: str, unterminated: str) -> int:
        """Where the literal opened by `quote` at `pos` closes: a backslash escapes the next
        character, and the line or the source ending first is Go's `unterminated` error."""
        src = self.src
        i = pos + 1
        while True:
            if i >= len(src) or src[i] == "\n":
                raise self.fail(pos, unterminated)
            if src[i] == "\\":
                i += 2
                continue
            if src[i] == quote:
                return i
            i += 1

    def lex_quote(self, pos: int) -> int:
        src = self.src
        i = self._closing(pos, '"', "unterminated quoted string")
        body = src[pos + 1 : i]
        try:
            value = _unquote(body, '"')
        except ValueError as exc:
            raise self.fail(pos, str(exc)) from None
        self.emit("STRING", src[pos : i + 1], pos, value)
        return i + 1

    def lex_char(self, pos: int) -> int:
        src = self.src
        i = self._closing(pos, "'", "unterminated character constant")
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
