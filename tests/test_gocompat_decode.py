"""Go's JSON decoding as clients see it: type errors, the body, and bounded nesting."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_ollama.gocompat.decode import (
    INT,
    MAX_DEPTH,
    STRING,
    BracketScanner,
    DecodeError,
    check,
    loads,
    nesting_depth,
    slice_of,
    struct,
    type_name,
)


def test_type_errors_name_the_innermost_struct_and_the_whole_path() -> None:
    message = struct("api.Message", content=STRING)
    request = struct("api.ChatRequest", messages=slice_of(message), n=INT)
    with pytest.raises(DecodeError) as info:
        check(request, {"messages": [{"content": "ok"}, {"content": 5}]})
    assert str(info.value) == (
        "json: cannot unmarshal number into Go struct field Message.messages.content of type string"
    )
    with pytest.raises(DecodeError, match=r"number 1\.5 into Go struct field ChatRequest\.n"):
        check(request, {"n": 1.5})
    check(request, {"messages": [None], "n": None})  # null is Go's zero value


@given(
    st.recursive(
        st.none() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=30,
    )
)
def test_nesting_depth_matches_the_parsed_value(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    assert nesting_depth(json.dumps(value)) == depth(value)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 2_000, 100_000])
def test_deep_nesting_is_a_client_error(levels: int) -> None:
    with pytest.raises(DecodeError, match="exceeded max depth"):
        loads(b"[" * levels + b"]" * levels)
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_surrogates_and_bad_utf8_become_replacement_characters() -> None:
    assert loads(b'{"a": "x\\ud800y", "b": "\xff"}') == {"a": "x\ufffdy", "b": "\ufffd"}


def test_percent_t_of_decoded_values() -> None:
    assert [type_name(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "<nil>", "bool", "float64", "float64", "string", "[]interface {}",
        "map[string]interface {}",
    ]  # fmt: skip


def brackets(pieces: list[str]) -> list[int]:
    """The scanner's brackets in text that grows by `pieces`, as the tool-call parser reads it:
    one scanner, each piece read from where the last stopped."""
    scanner, text, found = BracketScanner(), "", []
    for piece in pieces:
        text += piece
        found += scanner.brackets(text, len(text) - len(piece))
    return found


JSON_VALUES = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab"\\[]{}\n'),
    lambda c: st.lists(c) | st.dictionaries(st.text(alphabet='k"\\{'), c),
    max_leaves=20,
)


@given(JSON_VALUES, st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_bracket_scanner_reads_pieces_as_the_whole(value: object, cuts: list[int]) -> None:
    text = json.dumps(value)
    bounds = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[i:j] for i, j in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    expected = [
        i for i, ch in enumerate(text)
        if ch in "[]{}" and not _in_string(text, i)
    ]  # fmt: skip
    assert brackets([text]) == brackets(pieces) == expected


def _in_string(text: str, index: int) -> bool:
    in_string = escaped = False
    for ch in text[:index]:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            in_string = not in_string
    return in_string


def test_bracket_scanner_follows_ollamas_escapes() -> None:
    # A backslash escapes the next character outside a string too (Ollama's tools.go); one
    # that ends a piece escapes the first character of the next.
    assert brackets(["\\{[", '"a\\', '"]"', "}"]) == [2, 9]
    assert brackets(["x\\", "{}"]) == [3]


# ----- the one bracket scanner (`BracketScanner`), behind `nesting_depth` and the tool-call
# parser: strings, escapes, nesting, input that stops half-way, and time that grows linearly


def test_brackets_inside_strings_are_skipped_whatever_the_escapes() -> None:
    text = r'{"a": "x\"]}[{", "b": ["\\", "{"], "c\"{": "\\\"["}'
    found = list(BracketScanner().brackets(text))
    assert "".join(text[i] for i in found) == "{[]}"
    assert found == [0, text.index('["'), text.index(', "{"]') + 5, len(text) - 1]


def test_nesting_is_counted_outside_strings_only() -> None:
    assert nesting_depth('[{"a": [[]], "b": {}}]') == 4
    assert nesting_depth('["[[[[", "]]]]"]') == 1
    assert nesting_depth('{"\\"": "\\\\"}') == 1
    assert nesting_depth("") == nesting_depth('"[{"') == 0


def test_unclosed_input_leaves_the_scanner_where_it_stopped() -> None:
    scanner = BracketScanner()
    text = '{"a": [1, "still open ]'
    assert [text[i] for i in scanner.brackets(text)] == ["{", "["]
    assert scanner.in_string and not scanner.escaped
    more = text + '"], "b": "\\'
    assert [more[i] for i in scanner.brackets(more, len(text))] == ["]"]
    assert scanner.in_string and scanner.escaped  # the next piece's first character is escaped
    assert nesting_depth("[[[{") == 4  # what opened counts, though nothing closed it
    # Told a limit, it reads no deeper than one past it.
    assert nesting_depth("[" * 1_000_000, 256) == 257
    assert nesting_depth("[[]]" * 3, 256) == 2
    with pytest.raises(DecodeError):
        loads(b'{"a": [1, "still open ]')


@pytest.mark.parametrize(
    "unit",
    [
        '{"k\\"[": ["\\\\", "]"], "v": [[{}]]}, ',  # brackets in strings, escapes, nesting
        '"' + 'a\\"' * 50 + '", ',  # escaped quotes: one string, read in one search per quote
        "\\\\" * 20 + "{",  # backslashes outside strings, as model output may have
        '"' + "\\" * 41 + '"[x',  # a run of backslashes that ends escaping the quote
    ],
    ids=["json", "escaped quotes", "backslashes", "backslash run"],
)
def test_bracket_scanning_takes_time_linear_in_the_input(unit: str) -> None:
    """Ten times the text costs about ten times the CPU time (quadratic would be 100): the
    process's own CPU time, so other work on the machine does not count."""

    def cost(copies: int) -> float:
        text = unit * copies
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            for _ in BracketScanner().brackets(text):
                pass
            best = min(best, time.process_time() - start)
        return best

    assert cost(10_000) < 30 * max(cost(1_000), 1e-4)
