"""Word wrapping of a streamed answer, as `ollama run` does on a terminal.

Text arrives a token at a time, so a word is only known to be too long for the line once it has
been printed. Then it is taken back (cursor left over it, erase to the end of the line) and
written again at the start of the next line. The margin is five columns, as in Ollama; a word
too long for any line is broken where the margin falls.
"""

from __future__ import annotations

import unicodedata

MARGIN = 5
_BREAKS = " \t"


def char_width(ch: str) -> int:
    """Columns a character takes on a terminal: 2 for wide East Asian characters, else 1."""
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


class WordWrap:
    """Feed it the pieces of an answer; it returns what to write to a terminal `width` wide."""

    def __init__(self, width: int) -> None:
        self.limit = max(1, width - MARGIN)
        self.column = 0
        self.word = ""  # the last word on the line so far: what a wrap would move

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if ch in "\r\n":
                out.append(ch)
                self.column, self.word = 0, ""
                continue
            width = char_width(ch)
            if self.column + width > self.limit:
                out.append(self._wrap(ch, width))
                continue
            out.append(ch)
            self.column += width
            # Wide characters (CJK) are words of their own: a line may break after each.
            self.word = "" if ch in _BREAKS or width > 1 else self.word + ch
        return "".join(out)

    def _wrap(self, ch: str, width: int) -> str:
        if ch in _BREAKS:  # a space at the margin: the line simply ends here
            self.column, self.word = 0, ""
            return "\n"
        moved = text_width(self.word)
        if not self.word or moved + width > self.limit:
            # Nothing to move, or a word longer than a line: break it at the margin.
            self.column, self.word = width, ch
            return "\n" + ch
        self.column, self.word = moved + width, self.word + ch
        return f"\x1b[{moved}D\x1b[K\n{self.word}"
