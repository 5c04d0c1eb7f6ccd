"""From a request to the text the model reads: templates, capabilities, history truncation.

A model's TEMPLATE layer (Ollama's Go template) wins; without one, the GGUF's Jinja
`tokenizer.chat_template` renders in a sandbox; without either, the prompt goes as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import attrs
import jinja2
import trio
from jinja2.sandbox import ImmutableSandboxedEnvironment

from trio_ollama.parsers import (
    OutputParser,
    RenamesTools,
    ThinkingParser,
    builtin_parser,
    infer_thinking_tags,
)
from trio_ollama.renderers import UnknownRenderer, builtin_renderer
from trio_ollama.renderers.common import RenderError
from trio_ollama.renderers.gemma4 import gemma4_variant
from trio_ollama.runner.window import surely_longer
from trio_ollama.store import ModelDetails
from trio_ollama.templates import (
    Message,
    PromptTemplate,
    TemplateError,
    TemplateValues,
    parse_template,
    render_chat,
)

log = logging.getLogger(__name__)

Tokenize = Callable[[str], Awaitable[int]]


# A request's own template: real ones are a few KB; parsing is linear but not free.
MAX_REQUEST_TEMPLATE = 1024 * 1024

# What an image counts for when a conversation is fitted to the window (Ollama's `chatPrompt`
# counts every image of a model with a projector as 768 tokens, whatever the projector makes).
IMAGE_TOKENS = 768

# Parsed templates are cached, but only small ones: a request may bring a template of its own,
# and sixteen 4 MB ones must not stay in memory.
CACHED_TEMPLATE_BYTES = 64 * 1024


@lru_cache(maxsize=64)
def _go_cached(text: str) -> PromptTemplate:
    return parse_template(text)


def _go(text: str) -> PromptTemplate:
    return _go_cached(text) if len(text) <= CACHED_TEMPLATE_BYTES else parse_template(text)


def _jinja_raise(message: str) -> None:
    raise jinja2.TemplateError(message)


@lru_cache(maxsize=16)
def _jinja(text: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _jinja_raise
    return env.from_string(text)


class PromptError(Exception):
    """A prompt that cannot be built; `invalid` when the request's own template is at fault."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@attrs.frozen
class ModelPrompt:
    """How one model turns messages into a prompt, and what it can do."""

    go: PromptTemplate | None
    jinja: str | None
    system: str | None
    messages: tuple[Message, ...]
    embedding: bool
    has_projector: bool
    # The template came with the request: its failures are the client's (400), not the model's.
    from_request: bool = False
    # The model's built-in output parser (its PARSER) and prompt renderer (its RENDERER), its
    # family, and whether its own weights see images (a `vision.block_count` key), as Ollama's
    # capabilities read them.
    parser: str = ""
    renderer: str = ""
    family: str = ""
    vision_weights: bool = False
    # A gpt-oss model whose own template writes harmony (Ollama's `shouldUseHarmony`).
    harmony: bool = False

    @classmethod
    def of(cls, details: ModelDetails, template_override: str | None = None) -> ModelPrompt:
        text = template_override if template_override is not None else details.template
        if template_override is not None and len(template_override) > MAX_REQUEST_TEMPLATE:
            raise PromptError(
                f"template error: {len(template_override)} characters, over the limit of "
                f"{MAX_REQUEST_TEMPLATE}",
                invalid=True,
            )
        try:
            go = _go(text) if text is not None else None
        except (TemplateError, RecursionError) as exc:
            # Nesting too deep for the parser is Go's error too, in other words.
            raise PromptError(f"template error: {exc}", invalid=True) from exc
        info = details.gguf
        jinja = info.chat_template if info is not None and go is None else None
        return cls(
            go=go,
            jinja=jinja,
            system=details.system,
            messages=details.messages,
            embedding=info is not None and info.pooling_type is not None,
            has_projector=bool(details.projectors),
            from_request=template_override is not None,
            parser=details.config.parser,
            renderer=_renderer_of(details),
            family=details.config.model_family,
            vision_weights=info is not None and info.get("vision.block_count") is not None,
            harmony=_uses_harmony(details.config.model_family, details.template),
        )

    @property
    def builtin_parser_name(self) -> str:
        """The built-in parser that reads this model's output: its PARSER, else harmony for a
        gpt-oss model whose template writes harmony (Ollama picks it by the family)."""
        return self.parser or ("harmony" if self.harmony else "")

    def request_think(self, think: bool | str | None) -> bool | str | None:
        """The `think` the prompt and parser get: harmony's reasoning levels stop at "high",
        so Ollama asks a harmony model for that when the request says "max"."""
        return "high" if self.harmony and think == "max" else think

    @property
    def format_restart(self) -> str:
        """What ends the thinking when a chat under a format starts its second run: harmony
        cannot tell a prompt ending in thinking from one whose thinking goes on, so Ollama
        closes it and opens the final answer."""
        harmony = self.harmony or self.parser == "harmony"
        return "<|end|><|start|>assistant<|channel|>final<|message|>" if harmony else ""

    def prompt_tools(
        self, tools: Sequence[Mapping[str, Any]] | None
    ) -> Sequence[Mapping[str, Any]] | None:
        """The tools as the prompt shows them: a built-in parser may rename them (harmony
        makes TypeScript identifiers of them), and reads the calls back by those names."""
        parser: object = builtin_parser(self.builtin_parser_name) if tools else None
        if isinstance(parser, RenamesTools):
            return parser.prompt_tools(tools or ())
        return tools

    @property
    def capabilities(self) -> list[str]:
        """Ollama's capability names, in its order: what the weights are (an embedding model,
        or one that completes; vision built in), then what the template mentions (`.Tools`,
        `.Suffix`), a projector, and thinking (tags around `.Thinking`, the gpt-oss family);
        a built-in parser adds the tools and thinking it reads."""
        caps = ["embedding" if self.embedding else "completion"]
        if self.vision_weights:
            caps.append("vision")
        builtin = builtin_parser(self.parser) if self.parser else None
        if self.go is not None:
            if "tools" in self.go.vars or (builtin is not None and builtin.has_tool_support):
                caps.append("tools")
            if "suffix" in self.go.vars:
                caps.append("insert")
        elif self.jinja is not None and "tools" in self.jinja:
            caps.append("tools")
        if self.has_projector and "vision" not in caps:
            caps.append("vision")
        opening, closing = infer_thinking_tags(self.go.template if self.go else None)
        thinks = builtin is not None and builtin.has_thinking_support
        if (opening and closing) or thinks or self.family in ("gptoss", "gpt-oss"):
            caps.append("thinking")
        return caps

    def output_parser(
        self,
        prompt: str,
        *,
        think: bool | str | None,
        tools: Sequence[Mapping[str, Any]] = (),
        raw: bool = False,
        last: Message | None = None,
    ) -> OutputParser:
        """How to read this model's answer to `prompt` (a chat's ending with `last`):
        thinking and tool calls as its template writes them. A raw prompt skips the built-in
        parser, as Ollama's does, but its thinking is still split by the template's tags."""
        return OutputParser.for_request(
            self.go.template if self.go is not None else None,
            prompt,
            think=think,
            tools=tools,
            builtin="" if raw else self.builtin_parser_name,
            last=last,
        )

    def drop_old_thinking(self, messages: Sequence[Message], model_name: str) -> list[Message]:
        """Ollama's `filterThinkTags`: for Qwen 3 and DeepSeek R1, the `<think>` part of each
        assistant answer before the last user message is left out of the prompt (it only
        costs tokens there)."""
        msgs = list(messages)
        if self.family != "qwen3" and model_name != "deepseek-r1":
            return msgs
        last_user = max((i for i, m in enumerate(msgs) if m.role == "user"), default=-1)
        for i, msg in enumerate(msgs[:last_user]):
            if msg.role == "assistant":
                _, content = ThinkingParser("<think>", "</think>").add(msg.content)
                msgs[i] = attrs.evolve(msg, content=content)
        return msgs

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        think: bool | str | None = None,
    ) -> str:
        tools = self.prompt_tools(tools)
        try:
            # A built-in renderer writes the prompt in place of the model's template, as
            # Ollama's does; a request's own template (generate's) is used as it is.
            builtin = (
                builtin_renderer(self.renderer) if self.renderer and not self.from_request else None
            )
            if builtin is not None:
                return builtin.render(messages, tools, think)
        except (UnknownRenderer, RenderError) as exc:
            raise PromptError(str(exc)) from exc
        except (TemplateError, RecursionError) as exc:
            raise PromptError(f"template error: {exc}") from exc
        try:
            if self.go is not None:
                return render_chat(self.go, messages, tools=tools, think=think)
            if self.jinja is not None:
                return _jinja(self.jinja).render(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    tools=list(tools) if tools else None,
                    add_generation_prompt=True,
                    bos_token="",
                    eos_token="",
                )
        except (TemplateError, jinja2.TemplateError, RecursionError) as exc:
            raise PromptError(f"template error: {exc}", invalid=self.from_request) from exc
        return "".join(m.content for m in messages if m.role in ("user", "system"))

    def render_suffix(self, prompt: str, suffix: str) -> str:
        """Fill-in-the-middle: `.Prompt` and `.Suffix`, for templates that have `insert`."""
        assert self.go is not None
        try:
            return self.go.execute(TemplateValues(prompt=prompt, suffix=suffix))
        except (TemplateError, RecursionError) as exc:
            raise PromptError(f"template error: {exc}", invalid=self.from_request) from exc

    def conversation(
        self, messages: Sequence[Message], *, with_model_messages: bool
    ) -> list[Message]:
        """Model MESSAGEs, then the request's; SYSTEM first unless the request starts with its
        own system message (Ollama looks at the request's first message, not the model's)."""
        msgs = [*self.messages, *messages] if with_model_messages else list(messages)
        if self.system and (not messages or messages[0].role != "system"):
            msgs.insert(0, Message(role="system", content=self.system))
        return msgs


def _renderer_of(details: ModelDetails) -> str:
    """The model's RENDERER as Ollama resolves it for a request: `gemma4` by the model's size."""
    renderer = details.config.renderer
    if renderer == "gemma4":
        names = (details.name.display_shortest, str(details.name))
        return gemma4_variant(names, details.config.model_type)
    return renderer


def _uses_harmony(family: str, template: str | None) -> bool:
    # Ollama's heuristic: the family, and the tags nearly every harmony template has.
    return (
        family in ("gptoss", "gpt-oss")
        and template is not None
        and "<|start|>" in template
        and "<|end|>" in template
    )


@attrs.frozen
class FittedPrompt:
    """A prompt that fits the window, and the images its `[img-N]` tags stand for, in order."""

    text: str
    images: tuple[bytes, ...] = ()


def tag_images(messages: Sequence[Message]) -> tuple[list[Message], tuple[bytes, ...]]:
    """Ollama's image tags: each image of a message becomes `[img-N]` (N counting the images
    of all `messages` from 0), put in place of the next `[img]` the message's text holds, or
    else before its text. Returns the tagged messages and the images in the tags' order."""
    images: list[bytes] = []
    tagged: list[Message] = []
    for msg in messages:
        prefix, content = "", msg.content
        for image in msg.images:
            tag = f"[img-{len(images)}]"
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
            images.append(image)
        tagged.append(attrs.evolve(msg, content=prefix + content) if msg.images else msg)
    return tagged, tuple(images)


async def fit_history(
    model: ModelPrompt,
    messages: Sequence[Message],
    **kwargs: Any,
) -> str:
    """`fit_prompt`'s text, for conversations without images."""
    return (await fit_prompt(model, messages, **kwargs)).text


async def fit_prompt(
    model: ModelPrompt,
    messages: Sequence[Message],
    *,
    num_ctx: int,
    tokenize: Tokenize,
    truncate: bool,
    tools: Sequence[Mapping[str, Any]] | None = None,
    think: bool | str | None = None,
    max_token_bytes: int = 0,
) -> FittedPrompt:
    """Ollama's `chatPrompt`: drop the oldest messages until the prompt fits `num_ctx`, then
    tag the images of the messages kept (`tag_images`).

    With a projector, each image counts `IMAGE_TOKENS`. The last message and every system
    message before the cut always stay. The work grows with what is kept, not with what was
    sent: the search starts from the newest message and doubles the kept span until it
    overflows, then bisects that last doubling (dropping more never lengthens the prompt), so a
    5,000-message history that keeps 40 renders a few hundred messages, not 5,000 a dozen
    times. A prompt of more than `num_ctx * max_token_bytes`
    characters surely overflows and is not tokenized at all (`runner.window`). Templates render
    in a worker thread, so a heavy one (a request's own) never stalls the other requests.
    """

    async def render(start: int, tagged: bool = False) -> str:
        kept = list(messages[start:])
        if tagged:
            kept = tag_images(kept)[0]
        kept = [m for m in messages[:start] if m.role == "system"] + kept
        return await trio.to_thread.run_sync(
            functools.partial(model.render, kept, tools=tools, think=think)
        )

    def images_from(start: int) -> int:
        return sum(len(m.images) for m in messages[start:]) if model.has_projector else 0

    async def fits(prompt: str, start: int) -> bool:
        budget = num_ctx - IMAGE_TOKENS * images_from(start)
        if surely_longer(len(prompt), budget, max_token_bytes):
            return False
        return await tokenize(prompt) <= budget

    async def done(start: int) -> FittedPrompt:
        """The prompt from message `start` on, its images tagged (rendered again if any)."""
        images = tag_images(messages[start:])[1]
        if start:
            log.debug("truncated chat history", extra={"dropped": start})
        if images:
            return FittedPrompt(await render(start, tagged=True), images)
        return FittedPrompt(fitting[start] if start in fitting else await render(start))

    fitting: dict[int, str] = {}
    if not truncate or len(messages) <= 1:
        return await done(0)
    last = len(messages) - 1  # always kept, fitting or not
    # Find `low` < `high` where `high` fits (or is the last message) and `low` does not.
    high, span = last, 1
    while True:
        start = max(0, last - span)
        prompt = await render(start)
        if not await fits(prompt, start):
            low = start
            break
        fitting[start], high = prompt, start
        if start == 0:
            return await done(0)
        span *= 2
    low += 1  # the answer is in [low, high]
    while low < high:
        middle = (low + high) // 2
        prompt = await render(middle)
        if await fits(prompt, middle):
            fitting[middle] = prompt
            high = middle
        else:
            low = middle + 1
    return await done(low)
