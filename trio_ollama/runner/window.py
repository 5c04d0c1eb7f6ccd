"""A prompt cut to the context window in time that grows with what is kept, not with what is sent.

A sequence holds `n_ctx` tokens; a longer prompt keeps its first `num_keep` tokens and its last
`n_ctx - num_keep` (Ollama's runner cut). Tokenizing a 50 MB prompt to keep 4,096 of its tokens
would take the runner tens of seconds, so the cut is made on the text first. It rests on one bound:
a token covers at most `max_token_bytes` bytes (the vocabulary's longest piece) and a character
at least one byte, so a text of more than `n * max_token_bytes` characters surely holds more than
`n` tokens, and its last `n * max_token_bytes` characters hold at least `n` of them.

Each end is tokenized with `MARGIN` tokens to spare, which are then dropped: a cut through the
middle of a word tokenizes differently only near the cut. (A text with no break for thousands of
characters, where byte-pair merges can line up differently all along, may come out as another
valid tokenization of the same text: the model still reads the same characters.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

MARGIN = 32

Tokenize = Callable[[str, bool], list[int]]


def kept_at_start(num_keep: int, n_ctx: int) -> int:
    """How many leading tokens a cut keeps: `num_keep`, within [0, n_ctx - 1]."""
    return min(max(num_keep, 0), n_ctx - 1)


def surely_longer(chars: int, limit: int, max_token_bytes: int) -> bool:
    """Whether a text of `chars` characters holds more than `limit` tokens, known without
    tokenizing it (never true when the bound is unknown, `max_token_bytes` 0)."""
    return max_token_bytes > 0 and chars > limit * max_token_bytes


def shorten(text: str, *, n_ctx: int, num_keep: int, max_token_bytes: int) -> str:
    """`text` without a middle that no cut to `n_ctx` tokens could keep: both ends, each with
    the characters `window` will tokenize there, so that it gives the same tokens for the
    result as for the whole. A text that may fit is returned as it is."""
    if not surely_longer(len(text), n_ctx + MARGIN, max_token_bytes):
        return text
    head = (kept_at_start(num_keep, n_ctx) + MARGIN) * max_token_bytes
    tail = (n_ctx - kept_at_start(num_keep, n_ctx) + MARGIN) * max_token_bytes
    if head + tail >= len(text):
        return text
    return text[:head] + text[len(text) - tail :]


def cut(tokens: list[int], n_ctx: int, num_keep: int) -> list[int]:
    """Ollama's cut of a too-long prompt: the first `num_keep` tokens and the most recent."""
    if len(tokens) <= n_ctx:
        return tokens
    keep = kept_at_start(num_keep, n_ctx)
    return tokens[:keep] + tokens[len(tokens) - (n_ctx - keep) :]


def window(
    tokenize: Tokenize,
    text: str,
    *,
    prefix: Sequence[int] = (),
    n_ctx: int,
    num_keep: int,
    max_token_bytes: int,
    truncate: bool = True,
) -> list[int] | None:
    """The tokens of `prefix` + `text` (tokenized with the model's special tokens) that a
    sequence of `n_ctx` keeps, or None when they do not fit and `truncate` is off.

    A text that may fit is tokenized whole, as before; a longer one only at its two ends."""
    if not surely_longer(len(text), n_ctx + MARGIN, max_token_bytes):
        tokens = [*prefix, *tokenize(text, True)]
        if len(tokens) > n_ctx and not truncate:
            return None
        return cut(tokens, n_ctx, num_keep)
    if not truncate:
        return None
    keep = kept_at_start(num_keep, n_ctx)
    head = list(prefix[:keep])
    if len(head) < keep:
        missing = keep - len(head)
        head += tokenize(text[: (missing + MARGIN) * max_token_bytes], True)[:missing]
    # The tail is tokenized with the special tokens too: a model that ends every text with EOS
    # keeps it, and a BOS at the tail's start falls among the dropped margin.
    tail_n = n_ctx - keep
    tail = tokenize(text[len(text) - (tail_n + MARGIN) * max_token_bytes :], True)[-tail_n:]
    return head + tail
