"""Ollama's chat templates: a Go `text/template` engine, the values Ollama renders them with, and
the built-in templates it substitutes for a GGUF's Jinja `tokenizer.chat_template`.
"""

from trio_ollama.gocompat.template import (
    GoTemplate,
    TemplateError,
    TemplateExecError,
    go_sprintf,
    parse,
)
from trio_ollama.templates.chat import (
    Message,
    PromptTemplate,
    PropertyType,
    TemplateValues,
    Tool,
    ToolArguments,
    ToolCall,
    ToolCallFunction,
    ToolFunction,
    ToolFunctionParameters,
    ToolList,
    ToolProperties,
    ToolProperty,
    collate,
    parse_template,
    render_chat,
    think_values,
)
from trio_ollama.templates.select import (
    MAX_DISTANCE,
    BuiltinTemplate,
    builtin_names,
    builtin_template,
    levenshtein,
    select_builtin,
)

__all__ = [
    "MAX_DISTANCE",
    "BuiltinTemplate",
    "GoTemplate",
    "Message",
    "PromptTemplate",
    "PropertyType",
    "TemplateError",
    "TemplateExecError",
    "TemplateValues",
    "Tool",
    "ToolArguments",
    "ToolCall",
    "ToolCallFunction",
    "ToolFunction",
    "ToolFunctionParameters",
    "ToolList",
    "ToolProperties",
    "ToolProperty",
    "builtin_names",
    "builtin_template",
    "collate",
    "go_sprintf",
    "levenshtein",
    "parse",
    "parse_template",
    "render_chat",
    "select_builtin",
    "think_values",
]
