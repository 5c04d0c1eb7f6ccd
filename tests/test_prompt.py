"""Prompts from messages: history fitted to the context by a search from the newest message,
in work that grows with what is kept; renders in a thread."""

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
    assert calls <= 2 * n.bit_length() + 1, "a search, not a pass per message"


@pytest.mark.parametrize("max_token_bytes", [0, 4])
async def test_the_work_grows_with_what_is_kept_not_with_what_was_sent(
    max_token_bytes: int,
) -> None:
    messages = conversation(5000)
    tokenized = 0

    async def tokenize(text: str) -> int:
        nonlocal tokenized
        tokenized += len(text)
        return len(text) // 4

    fitted = await fit_history(MODEL, messages, num_ctx=300, tokenize=tokenize, truncate=True,
                               max_token_bytes=max_token_bytes)  # fmt: skip
    # What Ollama's loop keeps, found from the newest end (its own pass from the oldest renders
    # 5,000 prompts): the longest tail of messages that fits, with the system message.
    system = messages[:1]
    start = len(messages) - 1
    while start > 1 and len(MODEL.render(system + messages[start - 1 :])) // 4 <= 300:
        start -= 1
    assert fitted == MODEL.render(system + messages[start:])
    assert len(MODEL.render(system + messages[start - 1 :])) // 4 > 300
    everything = len(MODEL.render(messages))
    assert everything > 300 * len(fitted)
    # Doubling from the newest message overshoots at most twice what fits, and the bisection
    # after it tries spans no longer than that: some dozen times the kept prompt in all.
    assert tokenized < 20 * len(fitted), (tokenized, len(fitted))
    if max_token_bytes:
        # A prompt of more than 300 * 4 characters is known too long without tokenizing it.
        assert tokenized < 12 * len(fitted)


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
