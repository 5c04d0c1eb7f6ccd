"""What the compatible APIs share in reading a request (`api/compat.py`): each rule once, in
the words each API's middleware answers with."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from trio_ollama.api import compat
from trio_ollama.api.errors import APIError

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()


def refusal(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(APIError) as info:
        fn(*args, **kwargs)
    assert info.value.status == 400
    assert info.value.openai_type == compat.INVALID_REQUEST
    return info.value.message


@pytest.mark.parametrize("prefix", ["data:image/png;base64,", "data:image/jpeg;base64,",
                                    "data:image/jpg;base64,", "data:image/webp;base64,",
                                    "data:;base64,"])  # fmt: skip
def test_an_image_from_a_data_url(prefix: str) -> None:
    assert compat.image(prefix + PNG, data_url=True) == PNG


def test_an_image_from_base64_is_canonical() -> None:
    # Bits past the last whole byte are dropped, as the decoder drops them.
    assert compat.image("YR==") == "YQ=="
    assert compat.image(PNG) == PNG


@pytest.mark.parametrize(
    "url",
    ["https://example.com/cat.png", "data:image/gif;base64," + PNG, PNG,
     "data:image/png;base64,!!!", "data:image/png;base64,abc"],
)  # fmt: skip
def test_a_data_url_that_is_no_image_is_refused_in_ollamas_words(url: str) -> None:
    assert refusal(compat.image, url, data_url=True) == "invalid image input"


def test_bad_base64_is_refused_with_the_decoders_reason() -> None:
    assert refusal(compat.image, "abc").startswith("invalid base64 image data: ")


def test_tool_arguments_from_text_or_an_object() -> None:
    failure = "bad: {error}"
    assert compat.tool_arguments('{"city": "Oslo"}', failure=failure) == {"city": "Oslo"}
    assert compat.tool_arguments("null", failure=failure) == {}
    assert compat.tool_arguments({"x": 1}, failure=failure) == {"x": 1}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("[1]", "json: cannot unmarshal array into Go value of type "
                "api.ToolCallFunctionArguments"),
        (5, "json: cannot unmarshal number into Go value of type string"),
        ("{", "invalid JSON: "),
    ],
)  # fmt: skip
def test_tool_arguments_that_are_no_object_are_refused(value: Any, error: str) -> None:
    assert refusal(compat.tool_arguments, value, failure="bad: {error}").startswith(f"bad: {error}")
    assert refusal(compat.tool_arguments, value, failure="plain") == "plain"


def test_the_web_search_function_and_its_calls() -> None:
    tool = compat.web_search_tool("Searches.", "What to find.")
    assert tool == {
        "type": "function",
        "function": {
            "name": "web_search",
            "description": "Searches.",
            "parameters": {
                "type": "object",
                "required": ["query"],
                "properties": {"query": {"type": "string", "description": "What to find."}},
            },
        },
    }
    other = {"function": {"name": "get_weather", "arguments": {}}}
    first = {"function": {"name": "web_search", "arguments": {"query": "a"}}}
    second = {"function": {"name": "web_search", "arguments": {"query": "b"}}}
    assert compat.web_search_call([other, first, second]) == ("a", first)
    assert compat.web_search_call([other]) is None and compat.web_search_call([]) is None
    # A query that is missing or not a string is empty, as Ollama reads it.
    for arguments in ({}, {"query": 5}, None):
        call = {"function": {"name": "web_search", "arguments": arguments}}
        assert compat.web_search_call([call]) == ("", call)
