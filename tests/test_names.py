"""Model names: Ollama's parsing rules, and that no valid name can leave the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_ollama.names import InvalidNameError, ModelName, parse_name, parse_valid_name


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest")),
        ("llama3.2:1b", ("registry.ollama.ai", "library", "llama3.2", "1b")),
        ("user/model", ("registry.ollama.ai", "user", "model", "latest")),
        ("user/model:tag", ("registry.ollama.ai", "user", "model", "tag")),
        ("example.com/ns/m:t", ("example.com", "ns", "m", "t")),
        ("localhost:5000/ns/m:t", ("localhost:5000", "ns", "m", "t")),
        ("localhost:5000/ns/m", ("localhost:5000", "ns", "m", "latest")),
        ("https://example.com/ns/m:t", ("example.com", "ns", "m", "t")),
        ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m")),
    ],
)
def test_parse(text: str, parts: tuple[str, str, str, str]) -> None:
    name = parse_name(text)
    assert (name.host, name.namespace, name.model, name.tag) == parts
    assert name.is_valid


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":tag",
        "model:",
        "/model",
        "ns/",
        "a/b/c/d",
        "../etc/passwd",
        "..",
        "ns/..",
        "../m",
        "m:..",
        "/abs/path",
        "na.me/model",  # '.' is not allowed in a namespace
        "mo del",
        "model\x00x",
        "mod\\el",
        "-model",
        ".hidden",
        "m:ta:g",
        "ns/m:t:x",
        "x" * 81,
        "m:" + "t" * 81,
        "моdel",
    ],
)
def test_invalid(text: str) -> None:
    assert not parse_name(text).is_valid
    with pytest.raises(InvalidNameError):
        parse_valid_name(text)


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("user/m:tag", "user/m:tag"),
        ("example.com/library/m:t", "example.com/library/m:t"),
        ("REGISTRY.OLLAMA.AI/LIBRARY/m:t", "m:t"),
        ("registry.ollama.ai/Library/m:t", "m:t"),
    ],
)
def test_display_shortest(text: str, short: str) -> None:
    assert parse_name(text).display_shortest == short


def test_lengths() -> None:
    assert parse_name("x" * 80).is_valid
    # Ollama allows a 350-character host; no file system stores a 256-byte name (deviation).
    assert parse_name("h" * 255 + "/ns/m:t").is_valid
    assert not parse_name("h" * 256 + "/ns/m:t").is_valid
    assert not parse_name("x" * 81).is_valid


@given(st.text(max_size=60))
def test_valid_names_stay_inside_the_store(text: str) -> None:
    name = parse_name(text)
    if not name.is_valid:
        return
    root = Path("/store/manifests")
    resolved = (root / name.relative_path).resolve()
    assert root in resolved.parents
    assert len(resolved.relative_to(root).parts) == 4


def test_relative_path_of_invalid_name_raises() -> None:
    with pytest.raises(InvalidNameError):
        _ = ModelName("h", "n", "..", "t").relative_path
