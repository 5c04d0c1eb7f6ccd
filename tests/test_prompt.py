"""Prompts from messages: history fitted to the context by bisection, renders in a thread."""

from __future__ import annotations

import pytest

from trio_ollama.prompt import ModelPrompt, _go, fit_history
from trio_ollama.templates import Message

CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
MODEL = ModelPrompt(
    go=_go(CHATML), jinja=None, system=None, messages=(), embedding=False, has_projector=False
)


def conversation(n: int) -> list[Message]:
    out = [Message("system", "Be brief.")]
    for i in range(n):
        out.append(Message("user" if i % 2 == 0 else "assistant", f"message {i} " * (1 + i % 7)))
    return out


async def linear(messages: list[Message], num_ctx: int) -> str:
    """Ollama's own loop: drop the oldest message, one at a time, until the prompt fits."""
    for start in range(len(messages)):
        kept = [m for m in messages[:start] if m.role == "system"] + messages[start:]
        prompt = MODEL.render(kept)
        if start == len(messages) - 1 or len(prompt) // 4 <= num_ctx:
            return prompt
    raise AssertionError


@pytest.mark.parametrize(("n", "num_ctx"), [(1, 10), (5, 4), (40, 100), (300, 500), (300, 2)])
async def test_bisection_keeps_what_ollamas_loop_keeps(n: int, num_ctx: int) -> None:
    messages = conversation(n)
    calls = 0

    async def tokenize(text: str) -> int:
        nonlocal calls
        calls += 1
        return len(text) // 4

    fitted = await fit_history(MODEL, messages, num_ctx=num_ctx, tokenize=tokenize, truncate=True)
    assert fitted == await linear(messages, num_ctx)
    assert calls <= 12, "a search, not a pass per message"


async def test_a_template_too_long_to_run_stops_at_its_budget() -> None:
    from trio_ollama.prompt import PromptError

    heavy = ModelPrompt(
        go=_go("{{ range 20000000 }}x{{ end }}"), jinja=None, system=None, messages=(),
        embedding=False, has_projector=False, from_request=True,
    )  # fmt: skip

    async def tokenize(text: str) -> int:
        return 1

    with pytest.raises(PromptError, match="exceeded the budget of 1000000 steps") as info:
        await fit_history(heavy, [Message("user", "hi")], num_ctx=10, tokenize=tokenize,
                          truncate=True)  # fmt: skip
    assert info.value.invalid, "a request's own template: a client error"
