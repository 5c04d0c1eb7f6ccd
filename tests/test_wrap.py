"""Word wrapping of streamed answers, checked on what a terminal shows: the escape codes are
played on a small screen model, and the screen is read back."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from trio_ollama.cli.wrap import WordWrap, char_width, text_width

_ESCAPE = re.compile(r"\x1b\[(\d*)([DK])")


def screen(output: str) -> list[str]:
    """The lines a terminal shows after `output`: cursor left (in columns), erase to the end of
    the line, newline. A wide character fills two cells."""
    lines: list[list[str]] = [[]]
    col = 0
    i = 0
    while i < len(output):
        match = _ESCAPE.match(output, i)
        if match:
            if match.group(2) == "D":
                col = max(0, col - int(match.group(1) or 1))
            else:
                del lines[-1][col:]
            i = match.end()
            continue
        ch = output[i]
        if ch == "\n":
            lines.append([])
            col = 0
        else:
            cells = [ch] + [""] * (char_width(ch) - 1)
            line = lines[-1]
            line.extend([" "] * (col + len(cells) - len(line)))
            line[col : col + len(cells)] = cells
            col += len(cells)
        i += 1
    return ["".join(line) for line in lines]


def wrapped(pieces: list[str], width: int) -> list[str]:
    wrap = WordWrap(width)
    return screen("".join(wrap.feed(p) for p in pieces))


TEXT = (
    "The quick brown fox jumps over the lazy dog while the cat watches from the warm "
    "windowsill, thinking about nothing in particular."
)


def test_words_move_whole_to_the_next_line() -> None:
    # Token by token, as a model streams it.
    pieces = re.findall(r"\S+|\s+", TEXT)
    lines = wrapped(pieces, 30)
    assert all(text_width(line) <= 25 for line in lines), lines
    assert " ".join(line.strip() for line in lines) == TEXT
    words = set(TEXT.split())
    assert all(word in words for line in lines for word in line.split()), "no word was cut"


def test_streaming_in_any_pieces_shows_the_same_screen() -> None:
    whole = wrapped([TEXT], 30)
    by_char = wrapped(list(TEXT), 30)
    assert whole == by_char


def test_newlines_reset_the_line() -> None:
    lines = wrapped(["aaaa bbbb\ncccc dddd eeee"], 20)
    assert lines == ["aaaa bbbb", "cccc dddd eeee"]


def test_a_word_longer_than_a_line_is_broken_at_the_margin() -> None:
    lines = wrapped(["x" * 40], 20)
    assert lines == ["x" * 15, "x" * 15, "x" * 10]


def test_wide_characters_count_two_columns() -> None:
    lines = wrapped(["日本語のテキストです。" * 3], 20)
    assert all(text_width(line) <= 15 for line in lines), lines
    assert "".join(lines) == "日本語のテキストです。" * 3


def test_a_word_after_wide_characters_is_taken_back_by_columns() -> None:
    # "日本 abc": the cursor goes back over "abc" (3 columns) after two wide characters.
    lines = wrapped(["日本 " * 2, "abcdef"], 16)
    assert [line.rstrip() for line in lines] == ["日本 日本", "abcdef"], lines


@given(
    st.lists(st.text(alphabet="abc \n", min_size=1, max_size=12), max_size=30),
    st.integers(min_value=10, max_value=60),
)
def test_no_line_crosses_the_margin_and_no_text_is_lost(pieces: list[str], width: int) -> None:
    lines = wrapped(pieces, width)
    assert all(text_width(line) <= width - 5 for line in lines), lines
    # Only spaces may be replaced by line breaks; the words stay in order.
    assert "".join(lines).replace(" ", "") == "".join(pieces).replace(" ", "").replace("\n", "")
