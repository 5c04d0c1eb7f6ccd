"""The Modelfile language: Ollama's syntax, errors, and a print/parse round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_ollama.options import OptionError
from trio_ollama.store.modelfile import (
    Command,
    Message,
    ModelfileError,
    format_commands,
    parse_modelfile,
    to_create_request,
)

FULL = '''# a comment
FROM llama3.2
adapter ./lora.gguf
PARAMETER temperature 0.7
PARAMETER stop "<|im_end|>"
PARAMETER stop <|eot|>
parameter num_ctx 8192
TEMPLATE """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}"""
SYSTEM "You are
a pirate."
MESSAGE user Hello there
MESSAGE assistant """Ahoy"""
LICENSE """MIT
text"""
'''


def test_parse_full() -> None:
    commands = parse_modelfile(FULL)
    assert commands == [
        Command("model", "llama3.2"),
        Command("adapter", "./lora.gguf"),
        Command("temperature", "0.7"),
        Command("stop", "<|im_end|>"),
        Command("stop", "<|eot|>"),
        Command("num_ctx", "8192"),
        Command(
            "template",
            "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}",
        ),
        Command("system", "You are\na pirate."),
        Command("message", "user: Hello there"),
        Command("message", "assistant: Ahoy"),
        Command("license", "MIT\ntext"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PARAMETER temperature 1", "no FROM line"),
        ("", "no FROM line"),
        ("FROM x\nBOGUS y", '(line 2): command must be one of "from", "license"'),
        ("FROM x\nMESSAGE tool hi", '(line 2): message role must be one of "system", "user"'),
        ('FROM x\nSYSTEM """never closed', "unexpected EOF"),
        ('FROM x\nSYSTEM "never closed', "unexpected EOF"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert message in str(info.value)


def test_bom_and_case() -> None:
    assert parse_modelfile("\ufefffrom m\nsYsTeM hi") == [
        Command("model", "m"),
        Command("system", "hi"),
    ]


def test_create_request(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    hashed: list[Path] = []

    def fake_hash(path: Path) -> str:
        hashed.append(path)
        return "sha256:" + str(len(hashed)) * 64

    text = FULL.replace("FROM llama3.2", "FROM ./model.gguf")
    request = to_create_request(parse_modelfile(text), tmp_path, fake_hash)
    assert request.from_ == ""
    assert request.files == {"model.gguf": "sha256:" + "1" * 64}
    assert request.adapters == {"lora.gguf": "sha256:" + "2" * 64}
    assert request.parameters == {
        "temperature": 0.7,
        "stop": ["<|im_end|>", "<|eot|>"],
        "num_ctx": 8192,
    }
    assert request.system == "You are\na pirate."
    assert request.messages == (Message("user", "Hello there"), Message("assistant", "Ahoy"))
    assert request.license == ("MIT\ntext",)
    assert hashed == [tmp_path / "model.gguf", tmp_path / "lora.gguf"]


def test_from_a_name_that_is_not_a_path(tmp_path: Path) -> None:
    request = to_create_request(parse_modelfile("FROM smollm2:135m"), tmp_path, str)
    assert request.from_ == "smollm2:135m" and request.files == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("PARAMETER bogus 1", "unknown parameter 'bogus'"),
        ("PARAMETER num_ctx big", "invalid int value [big]"),
        ("PARAMETER temperature hot", "invalid float value [hot]"),
        ("PARAMETER use_mmap maybe", "invalid bool value [maybe]"),
    ],
)
def test_bad_parameters(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(OptionError) as info:
        to_create_request(parse_modelfile(f"FROM m\n{line}"), tmp_path, str)
    assert str(info.value) == message


def test_deprecated_parameters_are_dropped(tmp_path: Path) -> None:
    text = "FROM m\nPARAMETER mirostat 1\nPARAMETER penalize_newline true\nPARAMETER top_k 5"
    assert to_create_request(parse_modelfile(text), tmp_path, str).parameters == {"top_k": 5}


_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\x00\ufeff'),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s or "\n" in s or s.startswith(" ") or s.endswith(" "))


@given(system=_values, template=_values)
def test_print_then_parse_round_trip(system: str, template: str) -> None:
    commands = [
        Command("model", "/models/blobs/sha256-" + "a" * 64),
        Command("template", template),
        Command("system", system),
        Command("stop", "<|end|>"),
        Command("message", "user: hi there"),
    ]
    text = format_commands(commands)
    assert parse_modelfile(text) == commands
