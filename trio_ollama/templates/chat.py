"""The values Ollama hands a chat template, and how it renders a conversation with one.

Ollama's `Template.Execute` picks one of three ways to render (`template/template.go`):

1. `prompt` and `suffix` both set (fill-in-the-middle): one render with `.Prompt` and `.Suffix`.
2. The template mentions `.Messages` anywhere (as a field or `$.Messages`): one render with
   `.System` (every system message's content joined by a blank line), `.Messages` (the
   conversation after consecutive messages of the same role, tools excepted, were merged with a
   blank line; system messages stay in it), `.Tools`, `.Response` (empty), `.Think`,
   `.ThinkLevel` and `.IsThinkSet`.
3. Otherwise (a "legacy" template of `.System`/`.Prompt`/`.Response`): one render per exchange,
   concatenated. Walking the merged messages, a system message flushes a pending prompt or response
   and becomes the next `.System`; a user message flushes a pending response and becomes `.Prompt`;
   an assistant message becomes `.Response`. The last exchange is rendered with the template cut
   right after its first `.Response` field, so the model continues from there.

`parse_template` also appends `{{ .Response }}` to a template that mentions neither `.Messages`
nor `.Response`, as Ollama does.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeAlias, TypeVar, overload

import attrs

from trio_ollama.gocompat import gojson
from trio_ollama.gocompat.decode import (
    ANY,
    INT,
    STRING,
    TOOL_ARGUMENTS,
    GoType,
    go_field,
    go_metadata,
    pointer_to,
    slice_of,
    struct_type,
)
from trio_ollama.gocompat.encode import GoStruct
from trio_ollama.gocompat.template import (
    ActionNode,
    Arg,
    BranchNode,
    CommandNode,
    FieldNode,
    GoTemplate,
    Node,
    PipeNode,
    go_json_value,
    parse,
)

__all__ = [
    "IMAGE_DATA",
    "Message",
    "PromptTemplate",
    "PropertyType",
    "TemplateValues",
    "Think",
    "Tool",
    "ToolArguments",
    "ToolCall",
    "ToolCallFunction",
    "ToolFunction",
    "ToolFunctionParameters",
    "ToolList",
    "ToolProperties",
    "ToolProperty",
    "collate",
    "parse_template",
    "render_chat",
    "think_values",
]

log = logging.getLogger(__name__)
_V = TypeVar("_V")

# Ollama's `ImageData`: a `[]byte`, base64 in JSON.
IMAGE_DATA: Final = GoType("string", "api.ImageData")


def _json_text(data: Any) -> str:
    return gojson.dumps(data)


# ---------------------------------------------------------------------------------------------
# Tool calls
# ---------------------------------------------------------------------------------------------


class _GoMap(Mapping[str, _V]):
    """A read-only Go map: the Mapping protocol over `_data`; subclasses say how it prints."""

    __slots__ = ("_data",)
    _data: dict[str, _V]

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)


class _GoSlice(Sequence[_V]):
    """A read-only Go slice: the Sequence protocol over the tuple `_items`; subclasses say how
    it prints."""

    __slots__ = ("_items",)
    _items: tuple[_V, ...]

    @overload
    def __getitem__(self, index: int) -> _V: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[_V]: ...
    def __getitem__(self, index: int | slice) -> _V | Sequence[_V]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


class ToolArguments(_GoMap[Any]):
    """A tool call's arguments: a Go map whose `String()` is its JSON, keys sorted."""

    __slots__ = ()

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __hash__(self) -> int:
        return hash(gojson.dumps(self.go_json()))

    def __repr__(self) -> str:
        return f"ToolArguments({self._data!r})"

    def go_json(self) -> Any:  # a Go map, not a struct: keys sorted
        return go_json_value(self._data)

    def go_string(self) -> str:
        return _json_text(self.go_json())


def _arguments(value: Mapping[str, Any] | None) -> ToolArguments:
    return value if isinstance(value, ToolArguments) else ToolArguments(value)


@attrs.frozen(kw_only=True)
class ToolCallFunction(GoStruct):
    GO_NAME: ClassVar[str] = "api.ToolCallFunction"

    index: int = go_field(INT, default=0)
    name: str = go_field(STRING)
    arguments: ToolArguments = attrs.field(
        factory=ToolArguments, converter=_arguments, metadata=go_metadata(TOOL_ARGUMENTS)
    )


@attrs.frozen(kw_only=True)
class ToolCall(GoStruct):
    GO_NAME: ClassVar[str] = "api.ToolCall"

    id: str = go_field(STRING, default="", omitempty=True)
    function: ToolCallFunction = go_field(struct_type(ToolCallFunction))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ToolCall:
        """An API tool call object; null and absent fields are Go's zero values."""
        data = data or {}
        fn = data.get("function") or {}
        return cls(
            function=ToolCallFunction(
                name=str(fn.get("name") or ""),
                arguments=fn.get("arguments") or {},
                index=int(fn.get("index") or 0),
            ),
            id=str(data.get("id") or ""),
        )


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def _images(value: Iterable[bytes]) -> tuple[bytes, ...]:
    return tuple(value)


def _tool_calls(value: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(value)


def _messages(value: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Message(GoStruct):
    """A chat message; templates read it as `.Role`, `.Content`, `.ToolCalls`, `.ToolCallID`, ..."""

    GO_NAME: ClassVar[str] = "api.Message"
    # Go hands templates pointers to messages, which `{{ . }}` prints as `&{...}`.
    go_pointer: ClassVar[bool] = True

    role: str = go_field(STRING)
    content: str = go_field(STRING, default="")
    thinking: str = go_field(STRING, default="", omitempty=True)
    images: tuple[bytes, ...] = attrs.field(
        default=(), converter=_images, metadata=go_metadata(slice_of(IMAGE_DATA), omitempty=True)
    )
    tool_calls: tuple[ToolCall, ...] = attrs.field(
        default=(),
        converter=_tool_calls,
        metadata=go_metadata(slice_of(struct_type(ToolCall)), omitempty=True),
    )
    tool_name: str = go_field(STRING, default="", omitempty=True)
    tool_call_id: str = go_field(STRING, default="", omitempty=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        """An API message object (`role`, `content`, `images`, `tool_calls`, ...); null and
        absent fields are Go's zero values. Images may be bytes already (the API decodes and
        checks them first) or base64 text."""
        images = tuple(
            base64.b64decode(i) if isinstance(i, str) else bytes(i)
            for i in data.get("images") or ()
        )
        calls = tuple(
            c if isinstance(c, ToolCall) else ToolCall.from_json(c)
            for c in data.get("tool_calls") or ()
        )
        return cls(
            # Ollama lower-cases roles when it decodes a message.
            role=str(data.get("role") or "").lower(),
            content=str(data.get("content") or ""),
            thinking=str(data.get("thinking") or ""),
            images=images,
            tool_calls=calls,
            tool_name=str(data.get("tool_name") or ""),
            tool_call_id=str(data.get("tool_call_id") or ""),
        )


# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------


class PropertyType(_GoSlice[str]):
    """A JSON-schema `type`: one name or several; prints as the name, or `[a b]` for several."""

    __slots__ = ()

    def __init__(self, names: str | Iterable[str] | None = None) -> None:
        if names is None:
            self._items = ()
        elif isinstance(names, str):
            self._items = (names,)
        else:
            self._items = tuple(str(n) for n in names)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PropertyType):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"PropertyType({list(self._items)!r})"

    def go_string(self) -> str:
        if len(self._items) == 1:
            return self._items[0]
        return "[" + " ".join(self._items) + "]" if self._items else ""

    def go_json(self) -> Any:  # Ollama's own MarshalJSON: one name alone is a string
        return self._items[0] if len(self._items) == 1 else list(self._items)


def _property_type(value: Any) -> PropertyType:
    return value if isinstance(value, PropertyType) else PropertyType(value)


def _ts_type(name: str) -> str:
    return {
        "string": "string",
        "number": "number",
        "integer": "number",
        "boolean": "boolean",
        "array": "any[]",
        "object": "Record<string, any>",
        "null": "null",
    }.get(name, "any")


# Go's `PropertyType` and `ToolPropertiesMap`: a `[]string` and a map, each with its own JSON.
_PROPERTY_TYPE: Final = GoType("slice", "api.PropertyType", elem=STRING)
_PROPERTIES: Final = pointer_to(GoType("map", "api.ToolPropertiesMap", elem=ANY))


@attrs.frozen
class ToolProperty(GoStruct):
    GO_NAME: ClassVar[str] = "api.ToolProperty"

    # Of this same struct (a class cannot name itself in its own declaration).
    any_of: tuple[ToolProperty, ...] = go_field(
        slice_of(ANY), default=(), json="anyOf", omitempty=True
    )
    type: PropertyType = attrs.field(
        factory=PropertyType,
        converter=_property_type,
        metadata=go_metadata(_PROPERTY_TYPE, omitempty=True),
    )
    items: Any = go_field(ANY, default=None, omitempty=True, encode=go_json_value)
    description: str = go_field(STRING, default="", omitempty=True)
    enum: tuple[Any, ...] | None = go_field(
        slice_of(ANY), default=None, omitempty=True, encode=go_json_value
    )
    properties: ToolProperties | None = go_field(_PROPERTIES, default=None, omitempty=True)
    required: tuple[str, ...] = go_field(slice_of(STRING), default=(), omitempty=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolProperty:
        enum = data.get("enum")
        props = data.get("properties")
        return cls(
            type=PropertyType(data.get("type")),
            description=str(data.get("description", "") or ""),
            enum=tuple(enum) if enum is not None else None,
            items=data.get("items"),
            any_of=tuple(cls.from_json(p) for p in data.get("anyOf") or ()),
            properties=ToolProperties.from_json(props) if isinstance(props, Mapping) else None,
            required=tuple(data.get("required") or ()),
        )

    def to_typescript_type(self) -> str:
        """What Ollama's `toTypeScriptType` template function writes for this property."""
        if self.any_of:
            return " | ".join(p.to_typescript_type() for p in self.any_of)
        if not self.type:
            return "any"
        return " | ".join(_ts_type(t) for t in self.type)


class ToolProperties(_GoMap["ToolProperty"]):
    """A tool's parameter properties: a Go map (ranged over in key order) printing as JSON."""

    __slots__ = ()

    def __init__(self, data: Mapping[str, ToolProperty] | None = None) -> None:
        self._data: dict[str, ToolProperty] = dict(data or {})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolProperties:
        return cls(
            {
                k: v if isinstance(v, ToolProperty) else ToolProperty.from_json(v)
                for k, v in data.items()
            }
        )

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items(), key=lambda kv: kv[0])))

    def __repr__(self) -> str:
        return f"ToolProperties({self._data!r})"

    def go_json(self) -> Any:  # a Go map, not a struct: keys sorted
        return {k: self._data[k].go_json() for k in sorted(self._data)}

    def go_string(self) -> str:
        return _json_text(self.go_json())


def _properties(value: Any) -> ToolProperties | None:
    if value is None or isinstance(value, ToolProperties):
        return value
    return ToolProperties(value)


@attrs.frozen
class ToolFunctionParameters(GoStruct):
    GO_NAME: ClassVar[str] = "api.ToolFunctionParameters"

    type: str = go_field(STRING, default="object")
    defs: Any = go_field(ANY, default=None, json="$defs", omitempty=True, encode=go_json_value)
    items: Any = go_field(ANY, default=None, omitempty=True, encode=go_json_value)
    required: tuple[str, ...] = attrs.field(
        default=(), converter=_strings, metadata=go_metadata(slice_of(STRING), omitempty=True)
    )
    properties: ToolProperties | None = attrs.field(
        default=None, converter=_properties, metadata=go_metadata(_PROPERTIES)
    )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolFunctionParameters:
        props = data.get("properties")
        return cls(
            type=str(data.get("type", "") or ""),
            properties=ToolProperties.from_json(props) if isinstance(props, Mapping) else None,
            required=tuple(data.get("required") or ()),
            defs=data.get("$defs"),
            items=data.get("items"),
        )

    def go_string(self) -> str:
        # Ollama's `String()` is JSON, and Go's template printer uses it: templates rely on
        # `{{ .Function.Parameters }}` printing the schema the model is meant to read.
        return _json_text(self.go_json())


@attrs.frozen
class ToolFunction(GoStruct):
    GO_NAME: ClassVar[str] = "api.ToolFunction"

    name: str = go_field(STRING)
    description: str = go_field(STRING, default="", omitempty=True)
    parameters: ToolFunctionParameters = go_field(
        struct_type(ToolFunctionParameters), factory=ToolFunctionParameters
    )

    def go_string(self) -> str:
        # What Qwen's `{"type": "function", "function": {{ .Function }}}` relies on.
        return _json_text(self.go_json())


@attrs.frozen(kw_only=True)
class Tool(GoStruct):
    """A tool offered to the model; `{{ . }}` on one prints its JSON, as Ollama's `Tool.String`."""

    GO_NAME: ClassVar[str] = "api.Tool"

    type: str = go_field(STRING, default="function")
    items: Any = go_field(ANY, default=None, omitempty=True, encode=go_json_value)
    function: ToolFunction = go_field(struct_type(ToolFunction))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tool:
        fn = data.get("function") or {}
        return cls(
            function=ToolFunction(
                name=str(fn.get("name", "") or ""),
                description=str(fn.get("description", "") or ""),
                parameters=ToolFunctionParameters.from_json(fn.get("parameters") or {}),
            ),
            type=str(data.get("type", "") or ""),
            items=data.get("items"),
        )

    def go_string(self) -> str:
        return _json_text(self.go_json())


class ToolList(_GoSlice[Tool]):
    """`.Tools`: prints as JSON; `null` when the request had no tools (a nil Go slice)."""

    __slots__ = ("_is_nil",)

    def __init__(self, tools: Iterable[Tool] | None = None) -> None:
        self._is_nil = tools is None
        self._items = tuple(tools or ())

    def __repr__(self) -> str:
        return "ToolList(None)" if self._is_nil else f"ToolList({list(self._items)!r})"

    def go_json(self) -> Any:  # a Go slice, not a struct: nil is null
        return None if self._is_nil else [t.go_json() for t in self._items]

    def go_string(self) -> str:
        return _json_text(self.go_json())


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


@attrs.frozen
class TemplateValues:
    """Ollama's `template.Values`: what one render of a prompt is built from."""

    messages: tuple[Message, ...] = attrs.field(default=(), converter=_messages)
    tools: tuple[Tool, ...] | None = None
    prompt: str = ""
    suffix: str = ""
    think: bool = False
    think_level: str = ""
    is_think_set: bool = False
    # Render a `.Messages` template the legacy way anyway, to compare the two ways.
    force_legacy: bool = False


def collate(messages: Iterable[Message]) -> tuple[str, list[Message]]:
    """The system text (all system messages, blank-line joined) and the merged conversation."""
    system: list[str] = []
    merged: list[Message] = []
    for msg in messages:
        if msg.role == "system":
            system.append(msg.content)
        if merged and merged[-1].role == msg.role and msg.role != "tool":
            merged[-1] = attrs.evolve(merged[-1], content=merged[-1].content + "\n\n" + msg.content)
        else:
            merged.append(msg)
    return "\n\n".join(system), merged


class _ResponseCut:
    """Ollama's `deleteNode`: drop every node after the first `.Response` field, in walk order."""

    def __init__(self) -> None:
        self.cut = False

    def drop(self, node: object) -> bool:
        if isinstance(node, FieldNode) and "Response" in node.idents:
            self.cut = True
            return False
        return self.cut

    def nodes(self, nodes: tuple[Node, ...]) -> tuple[Node, ...]:
        if self.drop(nodes):
            # Ollama's own code would panic here (a branch list after the cut); keep it empty.
            return ()
        out: list[Node] = []
        for node in nodes:
            kept = self.node(node)
            if kept is not None:
                out.append(kept)
        return tuple(out)

    def node(self, node: Node) -> Node | None:
        if self.drop(node):
            return None
        if isinstance(node, ActionNode):
            pipe = self.pipe(node.pipe)
            return None if pipe is None else attrs.evolve(node, pipe=pipe)
        if isinstance(node, BranchNode):
            # Like Ollama, only the branch bodies are walked, never the condition.
            if self.drop(node):
                return None
            body = self.nodes(node.list)
            else_list = None if node.else_list is None else self.nodes(node.else_list)
            return attrs.evolve(node, list=body, else_list=else_list)
        return node

    def pipe(self, pipe: PipeNode) -> PipeNode | None:
        if self.drop(pipe):
            return None
        cmds: list[CommandNode] = []
        for cmd in pipe.cmds:
            args: list[Arg] = []
            for arg in cmd.args:
                kept = self.arg(arg)
                if kept is not None:
                    args.append(kept)
            if not args:
                return None
            cmds.append(CommandNode(tuple(args)))
        return attrs.evolve(pipe, cmds=tuple(cmds))

    def arg(self, arg: Arg) -> Arg | None:
        if isinstance(arg, PipeNode):
            return self.pipe(arg)
        return None if self.drop(arg) else arg


_RESPONSE_ACTION = ActionNode(
    PipeNode((), False, (CommandNode((FieldNode(("Response",)),)),), 0), 0
)


@attrs.frozen
class PromptTemplate:
    """A parsed Ollama template. `vars` holds the lower-cased names it mentions (Ollama's
    `Template.Vars`): "tools" there means the model supports tools, "suffix" that it can insert.
    """

    source: str
    template: GoTemplate
    vars: frozenset[str]

    @property
    def uses_messages(self) -> bool:
        return "messages" in self.vars

    def execute(self, values: TemplateValues) -> str:
        system, messages = collate(values.messages)
        think = {
            "Think": values.think,
            "ThinkLevel": values.think_level,
            "IsThinkSet": values.is_think_set,
        }
        if values.prompt and values.suffix:
            return self.template.execute(
                {"Prompt": values.prompt, "Suffix": values.suffix, "Response": "", **think}
            )
        if not values.force_legacy and self.uses_messages:
            return self.template.execute(
                {
                    "System": system,
                    "Messages": messages,
                    "Tools": ToolList(values.tools),
                    "Response": "",
                    **think,
                }
            )
        return self._execute_legacy(messages, think)

    def _execute_legacy(self, messages: list[Message], think: Mapping[str, Any]) -> str:
        out: list[str] = []
        system = prompt = response = ""

        def flush() -> None:
            nonlocal system, prompt, response
            out.append(
                self.template.execute(
                    {"System": system, "Prompt": prompt, "Response": response, **think}
                )
            )
            system = prompt = response = ""

        for msg in messages:
            if msg.role == "system":
                if prompt or response:
                    flush()
                system = msg.content
            elif msg.role == "user":
                if response:
                    flush()
                prompt = msg.content
            elif msg.role == "assistant":
                response = msg.content
        last = self.template.with_root(_ResponseCut().nodes(self.template.root))
        out.append(
            last.execute({"System": system, "Prompt": prompt, "Response": response, **think})
        )
        return "".join(out)


def parse_template(source: str) -> PromptTemplate:
    """Parse a template as Ollama's `template.Parse` does; raises `TemplateError` if Go would."""
    tmpl = parse(source)
    names = frozenset(n.lower() for n in tmpl.identifiers())
    if "messages" not in names and "response" not in names:
        tmpl = tmpl.with_root((*tmpl.root, _RESPONSE_ACTION))
    return PromptTemplate(source, tmpl, names)


THINK_LEVELS = ("high", "medium", "low", "max")
# A request's `think`: a bool, a level such as "high", or None when the request does not say.
Think: TypeAlias = bool | str | None


def thinks(think: bool | str | None) -> bool:
    """Ollama's `ThinkValue.Bool`: thinking is on for true and for any level."""
    return think is True or (isinstance(think, str) and think in THINK_LEVELS)


def think_values(think: bool | str | None) -> tuple[bool, str, bool]:
    """`.Think`, `.ThinkLevel` and `.IsThinkSet` for a request's `think` (true means "medium")."""
    if think is None:
        return False, "", False
    if isinstance(think, bool):
        return think, "medium" if think else "", True
    return thinks(think), think, True


def render_chat(
    template: PromptTemplate | str,
    messages: Iterable[Message | Mapping[str, Any]],
    *,
    system: str | None = None,
    tools: Iterable[Tool | Mapping[str, Any]] | None = None,
    think: bool | str | None = None,
) -> str:
    """Render a chat prompt the way Ollama's chat handler does (without truncation or images).

    `system` is the model's SYSTEM: it is put first unless the conversation starts with its own
    system message. `messages` and `tools` may be API JSON objects.
    """
    tmpl = parse_template(template) if isinstance(template, str) else template
    msgs = [m if isinstance(m, Message) else Message.from_json(m) for m in messages]
    if system and (not msgs or msgs[0].role != "system"):
        msgs.insert(0, Message(role="system", content=system))
    tool_list = (
        None
        if tools is None
        else tuple(t if isinstance(t, Tool) else Tool.from_json(t) for t in tools)
    )
    think_on, level, is_set = think_values(think)
    values = TemplateValues(
        messages=tuple(msgs),
        tools=tool_list,
        think=think_on,
        think_level=level,
        is_think_set=is_set,
    )
    log.debug("rendering chat template with %d messages", len(msgs))
    return tmpl.execute(values)
