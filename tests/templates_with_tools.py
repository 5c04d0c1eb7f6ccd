"""Chat templates with tool-call and thinking sections, in the shapes of the families Ollama's
library serves (written for these tests; the 19 templates in `tests/data` have one such section
between them, command-r's). Each says how its model writes tool calls and thinking."""

from __future__ import annotations

from tests.server import ServerProcess
from trio_ollama.store import CreateRequest, Store
from trio_ollama.store.default_model import DEFAULT_MODEL

# Qwen 2.5 / Qwen 3: tools as JSON lines, calls in <tool_call> tags, thinking in <think>.
QWEN = (
    "{{- if .Tools }}<|im_start|>system\n# Tools\n<tools>\n"
    '{{- range .Tools }}\n{"type": "function", "function": {{ .Function }}}{{- end }}\n'
    "</tools><|im_end|>\n{{ end }}"
    "{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}\n"
    '{{ if and .Thinking (eq .Role "assistant") }}<think>{{ .Thinking }}</think>{{ end }}'
    "{{ .Content }}"
    "{{- if .ToolCalls }}<tool_call>\n"
    '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", '
    '"arguments": {{ .Function.Arguments }}}\n'
    "{{ end }}</tool_call>{{ end }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
    "{{- if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ end }}"
)

# Llama 3.2: a call is a bare JSON object with `parameters`.
LLAMA32 = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{- if .ToolCalls }}"
    '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": '
    "{{ .Function.Arguments }}}{{ end }}"
    "{{- else }}{{ .Content }}{{ end }}<|eot_id|>{{ end }}"
    "{{ if .Tools }}{{ json .Tools }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)

# ChatML (SmolLM2's own format) with Llama 3.2's way of calling tools: a bare JSON object, on
# its own line so that the model (or a JSON-schema `format`) can write one.
CHATML_JSON_CALLS = """{{- if .Tools }}<|im_start|>system
You can call these tools:
{{ range .Tools }}{{ .Function }}
{{ end }}<|im_end|>
{{ end }}
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters":
{{- .Function.Arguments }}}{{ end }}
{{- else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

# Mistral: [TOOL_CALLS] then a JSON list of calls.
MISTRAL = (
    "{{- range .Messages }}"
    '{{- if eq .Role "user" }}[INST] {{ .Content }}[/INST]'
    "{{- else if .ToolCalls }}[TOOL_CALLS] ["
    '{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": '
    "{{ .Function.Arguments }}}{{ end }}]</s>"
    "{{- else }}{{ .Content }}</s>{{ end }}{{ end }}"
    "{{- if .Tools }}[AVAILABLE_TOOLS] {{ json .Tools }}[/AVAILABLE_TOOLS]{{ end }}"
)

# DeepSeek R1: thinks in <think>, no tools.
DEEPSEEK_R1 = (
    "{{- range .Messages }}"
    '{{- if eq .Role "user" }}<｜User｜>{{ .Content }}'
    '{{- else if eq .Role "assistant" }}<｜Assistant｜>'
    "{{- if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}<｜end▁of▁sentence｜>"
    "{{- end }}{{ end }}<｜Assistant｜>"
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "The city"}},
        },
    },
}

TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


TOOLS_MODEL = "smollm2-tools"
# SmolLM2's own template knows no tools; this one does (its tool calls and results rendered as
# text), so a conversation with tools reaches the real model.
TOOLS_TEMPLATE = (
    "{{- if .Tools }}<|im_start|>system\nTools:{{ range .Tools }} {{ .Function.Name }}"
    "{{ end }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}"
    "{{- range .ToolCalls }}[call {{ .Function.Name }} {{ .Function.Arguments }}]{{ end }}"
    "<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)


def add_tools_model(server: ServerProcess) -> str:
    """TOOLS_MODEL in the store of `server` (a real one, holding the default model); its URL."""
    Store(server.models).create(
        TOOLS_MODEL, CreateRequest(from_=DEFAULT_MODEL, template=TOOLS_TEMPLATE)
    )
    return server.url
