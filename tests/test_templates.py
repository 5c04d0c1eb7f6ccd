"""Ollama's chat templates: the Go text/template engine, chat rendering, and built-in selection."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_ollama.templates import (
    Message,
    TemplateError,
    TemplateExecError,
    TemplateValues,
    Tool,
    ToolCall,
    ToolCallFunction,
    builtin_names,
    builtin_template,
    collate,
    go_sprintf,
    levenshtein,
    parse,
    parse_template,
    render_chat,
    select_builtin,
    think_values,
)

# Ollama's expected renderings and selection cases (MIT; see the README there).
SHARED_TEMPLATES = Path(__file__).resolve().parent / "data" / "ollama-templates"
BUILTIN = Path(__file__).resolve().parents[1] / "trio_ollama" / "templates" / "builtin"

HELLO = Message("user", "Hello, how are you?")
GREAT = Message("assistant", "I'm doing great. How can I help you today?")
SHOW = Message("user", "I'd like to show off how chat templating works!")
CONVERSATIONS = {
    "user": [HELLO],
    "user-assistant-user": [HELLO, GREAT, SHOW],
    "system-user-assistant-user": [
        Message("system", "You are a helpful assistant."),
        HELLO,
        GREAT,
        SHOW,
    ],
}


def _expected_cases() -> list[Any]:
    folder = SHARED_TEMPLATES / "expected"
    if not folder.is_dir():
        # Fail rather than silently collect nothing.
        return [pytest.param("MISSING", "MISSING", id="shared-data-missing")]
    return [
        pytest.param(d.name, case.name, id=f"{d.name}/{case.name}")
        for d in sorted(folder.iterdir())
        for case in sorted(d.iterdir())
    ]


def _selection_cases() -> list[Any]:
    path = SHARED_TEMPLATES / "jinja-templates.jsonl"
    if not path.is_file():
        return [pytest.param("MISSING", "MISSING", id="shared-data-missing")]
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            for name, jinja in json.loads(line).items():
                cases.append(pytest.param(name, jinja, id=f"{n}-{name}"))
    return cases


def render(source: str, data: Any = None) -> str:
    return parse(source).execute(data)


# ---------------------------------------------------------------------------------------------
# The shared expectations
# ---------------------------------------------------------------------------------------------


def test_shared_data_present() -> None:
    assert SHARED_TEMPLATES.is_dir(), f"missing test data: {SHARED_TEMPLATES}"
    assert len(_expected_cases()) == 3 * len(list((SHARED_TEMPLATES / "expected").iterdir()))


@pytest.mark.parametrize(("template", "case"), _expected_cases())
def test_expected_rendering(template: str, case: str) -> None:
    assert SHARED_TEMPLATES.is_dir(), f"missing test data: {SHARED_TEMPLATES}"
    source = (BUILTIN / template).read_text(encoding="utf-8")
    expected = (SHARED_TEMPLATES / "expected" / template / case).read_text(encoding="utf-8")
    assert render_chat(source, CONVERSATIONS[case]) == expected


@pytest.mark.parametrize(("name", "jinja"), _selection_cases())
def test_select_builtin(name: str, jinja: str) -> None:
    assert SHARED_TEMPLATES.is_dir(), f"missing test data: {SHARED_TEMPLATES}"
    chosen = select_builtin(jinja)
    assert chosen is not None
    assert chosen.name == name
    # Every chosen template must parse.
    assert parse_template(chosen.template).template.root


def test_builtin_files_are_ollamas_byte_for_byte() -> None:
    sums = (SHARED_TEMPLATES / "SHA256SUMS").read_text().splitlines()
    expected = dict(reversed(line.split("  ", 1)) for line in sums)
    packaged = sorted(p.name for p in BUILTIN.iterdir() if p.suffix in (".gotmpl", ".json"))
    assert packaged == sorted(expected)
    for name in packaged:
        assert hashlib.sha256((BUILTIN / name).read_bytes()).hexdigest() == expected[name], name
    assert (BUILTIN / "NOTICE.md").is_file()


def test_every_builtin_parses_and_renders() -> None:
    for name in builtin_names():
        tmpl = builtin_template(name)
        assert tmpl.stop, name
        assert render_chat(tmpl.template, CONVERSATIONS["user"])


def test_selection_is_fast() -> None:
    cases = [c.values[1] for c in _selection_cases()]
    start = time.perf_counter()
    for jinja in cases:
        select_builtin(jinja)
    select_builtin("x" * 5000)
    assert time.perf_counter() - start < 1.0


def test_select_no_match() -> None:
    assert select_builtin("") is None
    assert select_builtin("{% for m in messages %}{{ m.content }}{% endfor %}" * 20) is None


def test_builtin_params() -> None:
    gemma3 = builtin_template("gemma3-instruct")
    assert gemma3.parameters == {"stop": ["<end_of_turn>"], "temperature": 0.1}
    assert gemma3.stop == ("<end_of_turn>",)
    # Ollama keeps only `stop` in the params layer of an auto-detected template.
    assert gemma3.params_layer() == {"stop": ["<end_of_turn>"]}
    with pytest.raises(KeyError):
        builtin_template("no-such-template")
    with pytest.raises(KeyError):
        builtin_template("../index")


def test_select_near_miss() -> None:
    chatml = builtin_template("chatml")
    jinja = json.loads((BUILTIN / "index.json").read_text())[0]["template"]
    chosen = select_builtin(jinja + " " * 50)
    assert chosen is not None and chosen.name == "chatml"
    assert chosen.template == chatml.template


# ---------------------------------------------------------------------------------------------
# Levenshtein
# ---------------------------------------------------------------------------------------------


def _dp_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("", "abc", 3),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("héllo", "hello", 1),
        ("😀x", "x", 1),
    ],
)
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="abcé😀", max_size=80),
    st.text(alphabet="abcé😀", max_size=80),
    st.integers(min_value=1, max_value=60),
)
def test_levenshtein_matches_dynamic_programming(a: str, b: str, limit: int) -> None:
    exact = _dp_distance(a, b)
    assert levenshtein(a, b) == exact
    bounded = levenshtein(a, b, limit)
    if exact < limit:
        assert bounded == exact
    else:
        assert bounded >= limit


# ---------------------------------------------------------------------------------------------
# Parse errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ .Prompt", "template: :1: unclosed action"),
        ("{{ if .Prompt }}", "template: :1: unexpected EOF"),
        ("{{ Prompt }}", 'template: :1: function "Prompt" not defined'),
    ],
)
def test_ollama_bad_templates(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as exc:
        parse_template(source)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ $x }}", 'undefined variable "$x"'),
        ("{{ }}", "missing value for command"),
        ("{{ if }}{{ end }}", "missing value for if"),
        ("{{ .A | 3 }}", "non executable command in pipeline stage 2"),
        ('{{ "abc }}', "unterminated quoted string"),
        ("{{ (.A }}", "unclosed left paren"),
        ("{{/* c */ .A }}", "comment ends before closing delimiter"),
        ("{{ range $a, $b, $c := .L }}{{ end }}", "too many declarations in range"),
        ("{{ if .A }}{{ else }}{{ else }}{{ end }}", "expected end; found {{else}}"),
        ("line one\n{{ .A", "template: :2: unclosed action"),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=None) as exc:
        parse(source)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{{ eq "a" 1 }}', "incompatible types for comparison"),
        ("{{ index .L 9 }}", "index out of range: 9"),
        ("{{ len 3 }}", "len of type int"),
        ("{{ .N.X }}", "nil pointer evaluating interface {}.X"),
        ("{{ .T.X }}", "can't evaluate field X in type bool"),
        ("{{ slice .L 2 1 }}", "invalid slice index: 2 > 1"),
        ('{{ template "nope" }}', 'template "nope" not defined'),
        ("{{ range .T }}{{ end }}", "range can't iterate over true"),
    ],
)
def test_exec_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateExecError) as exc:
        render(source, {"L": [1, 2], "N": None, "T": True})
    assert message in str(exc.value)


# ---------------------------------------------------------------------------------------------
# The Go template engine
# ---------------------------------------------------------------------------------------------


def test_whitespace_trimming() -> None:
    assert render("a  \n {{- 1 }}  b") == "a1  b"
    assert render("a  {{ 1 -}} \n\t b") == "a  1b"
    assert render("a \n{{- 1 -}}\n b") == "a1b"
    # A dash without a following space is a negative number, not a trim marker.
    assert render("a {{-3}} b") == "a -3 b"
    assert render("a\n{{- /* gone */ -}}\nb") == "ab"
    assert render("a {{/* gone */}} b") == "a  b"


def test_literals() -> None:
    assert render('{{ `raw\\n` }}|{{ "tab\\t\\u00e9\\x41" }}') == "raw\\n|tab\téA"
    assert (
        render("{{ 1.0 }}|{{ 1e3 }}|{{ 0x10 }}|{{ 'a' }}|{{ 1.5 }}|{{ 017 }}")
        == "1|1000|16|97|1.5|15"
    )
    assert render("{{ 1e6 }}|{{ 123456.0 }}|{{ 0.00001 }}") == "1e+06|123456|1e-05"
    assert render("{{ true }}|{{ false }}") == "true|false"


def test_fields_and_missing_values() -> None:
    data = {"A": {"B": {"C": "deep"}}, "N": None, "L": [1, 2]}
    assert render('{{ .A.B.C }}|{{ $.A.B.C }}|{{ (index .A "B").C }}', data) == "deep|deep|deep"
    # A missing map key prints Go's "<no value>"; print() shows it as <nil>.
    assert render("{{ .Missing }}|{{ .N }}|{{ print .N }}", data) == "<no value>|<no value>|<nil>"
    assert render("{{ .L }}|{{ .A.B }}", data) == "[1 2]|map[C:deep]"


def test_struct_fields_use_go_names() -> None:
    msg = Message("tool", "sunny", tool_name="weather", tool_call_id="call_1")
    assert render("{{ .Role }} {{ .ToolName }} {{ .ToolCallID }}", msg) == "tool weather call_1"
    # Go only exposes exported (capitalised) fields.
    with pytest.raises(TemplateExecError, match="can't evaluate field role"):
        render("{{ .role }}", msg)
    with pytest.raises(TemplateExecError, match="can't evaluate field Nope"):
        render("{{ .Nope }}", msg)


def test_range_with_else() -> None:
    source = "{{ range $i, $v := .L }}{{ $i }}={{ $v }},{{ else }}empty{{ end }}"
    assert render(source, {"L": ["a", "b"]}) == "0=a,1=b,"
    assert render(source, {"L": []}) == "empty"
    assert render(source, {"L": None}) == "empty"
    assert render(source, {}) == "empty"


def test_range_over_maps_ints_and_control() -> None:
    data = {"M": {"b": 2, "a": 1, "c": 3}, "L": [1, 2, 3, 4]}
    assert render("{{ range $k, $v := .M }}{{ $k }}{{ $v }}{{ end }}", data) == "a1b2c3"
    assert render("{{ range .M }}{{ . }}{{ end }}", data) == "123"
    assert render("{{ range 3 }}{{ . }}{{ end }}", data) == "012"
    source = (
        "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}"
        "{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    )
    assert render(source, data) == "13"
    assert render("{{- range $i, $_ := .L }}{{ if $i }}, {{ end }}{{ . }}{{ end }}", data) == (
        "1, 2, 3, 4"
    )


def test_variables() -> None:
    # `=` assigns the outer variable; `:=` in a block shadows it until the block ends.
    assert render("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}") == "2"
    assert render("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}") == "21"
    # An assignment inside a range survives the iteration; a declaration does not.
    source = '{{ $acc := "" }}{{ range .L }}{{ $acc = printf "%s%d" $acc . }}{{ end }}{{ $acc }}'
    assert render(source, {"L": [1, 2, 3]}) == "123"
    assert render("{{ with $y := .A }}{{ $y }}{{ end }}", {"A": "v"}) == "v"
    assert render("{{ $ }}", "root") == "root"


def test_nested_if_else_if() -> None:
    source = (
        "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two"
        "{{ else if gt .N 10 }}{{ if eq .N 11 }}eleven{{ else }}big{{ end }}"
        "{{ else }}other{{ end }}"
    )
    assert [render(source, {"N": n}) for n in (1, 2, 11, 12, 5)] == [
        "one",
        "two",
        "eleven",
        "big",
        "other",
    ]


def test_with_and_else_with() -> None:
    source = "{{ with .A }}a={{ . }}{{ else with .B }}b={{ . }}{{ else }}none{{ end }}"
    assert render(source, {"A": "x", "B": "y"}) == "a=x"
    assert render(source, {"A": "", "B": "y"}) == "b=y"
    assert render(source, {}) == "none"


def test_truthiness() -> None:
    source = "{{ if . }}T{{ else }}F{{ end }}"
    falsy = [0, 0.0, "", [], {}, None, False]
    truthy = [1, -1, 0.5, "x", [0], {"a": 0}, True, Message("user")]
    assert [render(source, v) for v in falsy] == ["F"] * len(falsy)
    assert [render(source, v) for v in truthy] == ["T"] * len(truthy)


def test_comparisons_len_slice_index() -> None:
    data = {"S": "héllo", "L": [10, 20, 30], "M": {"a": 1}}
    assert render('{{ eq 1 2 3 1 }}|{{ eq 1 2 3 }}|{{ eq .S "a" "héllo" }}', data) == (
        "true|false|true"
    )
    assert render('{{ ne 1 2 }}|{{ lt 1 2 }}|{{ le 2 2 }}|{{ gt "b" "a" }}|{{ ge 1 2 }}') == (
        "true|true|true|true|false"
    )
    # len counts bytes of a string, as Go does.
    assert render("{{ len .S }}|{{ len .L }}|{{ len .M }}", data) == "6|3|1"
    assert render(
        "{{ slice .L 1 }}|{{ slice .L 1 2 }}|{{ slice .L }}|{{ slice .S 0 1 }}", data
    ) == ("[20 30]|[20]|[10 20 30]|h")
    assert render('{{ len (slice .L 2) }}|{{ index .L 2 }}|{{ index .M "a" }}', data) == "1|30|1"
    assert render("{{ eq (len (slice .L 2)) 1 }}", data) == "true"


def test_and_or_not_are_lazy() -> None:
    data = {"L": [1]}
    assert render('{{ and 1 0 }}|{{ and 1 2 }}|{{ or 0 "" "x" }}|{{ or 0 "" }}|{{ not 0 }}') == (
        "0|2|x||true"
    )
    # The second operand would fail; `and`/`or` stop before evaluating it.
    assert render("{{ and false (index .L 99) }}", data) == "false"
    assert render("{{ or true (index .L 99) }}", data) == "true"


def test_pipelines_and_parentheses() -> None:
    assert render('{{ "a" | printf "%s-%s" "b" }}') == "b-a"
    assert render('{{ .L | len | printf "%03d" }}', {"L": [1, 2]}) == "002"
    assert render("{{ if and .T (eq (len .L) 2) }}yes{{ end }}", {"T": 1, "L": [1, 2]}) == "yes"


def test_print_functions() -> None:
    assert render('{{ print 1 2 "a" 3 }}') == "1 2a3"
    assert render('{{ println 1 "a" }}') == "1 a\n"
    assert render(
        '{{ printf "%v|%s|%d|%q|%5s|%-5s|%05d|%x|%t|%.2f" '
        '1 "a" 3 "q" "r" "l" 42 "hi" true 3.14159 }}'
    ) == ('1|a|3|"q"|    r|l    |00042|6869|true|3.14')
    assert go_sprintf("%d %d", 1) == "1 %!d(MISSING)"
    assert go_sprintf("%d", 1, 2) == "1%!(EXTRA int=2)"
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("%s\n\n%s", "a", "b") == "a\n\nb"
    assert go_sprintf("%e|%g|%v", 1234.5, 0.00001, [1, "a"]) == "1.234500e+03|1e-05|[1 a]"


def test_json_function() -> None:
    data = {"M": {"b": [1, 2.5], "a": None}, "S": "<b>&", "F": 2.0}
    assert render("{{ json .M }}", data) == '{"a":null,"b":[1,2.5]}'
    assert render("{{ json .S }}", data) == '"\\u003cb\\u003e\\u0026"'
    assert render("{{ json .F }}|{{ json .Missing }}|{{ json true }}", data) == "2|null|true"
    call = ToolCall(function=ToolCallFunction(name="f", arguments={"z": 1, "a": {"y": 2, "b": 3}}))
    assert render("{{ json . }}", call) == (
        '{"function":{"index":0,"name":"f","arguments":{"a":{"b":3,"y":2},"z":1}}}'
    )
    assert render("{{ .Function.Arguments }}", call) == '{"a":{"b":3,"y":2},"z":1}'


def test_define_template_block() -> None:
    assert render(
        '{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" "a" }}{{ template "x" 1 }}'
    ) == ("[a][1]")
    assert render('{{ block "b" .L }}n={{ len . }}{{ end }}', {"L": [1, 2]}) == "n=2"


def test_identifiers() -> None:
    tmpl = parse(
        "{{ range $i, $m := .Messages }}{{ $.System }}{{ (.Role) }}{{ end }}{{ json .Tools }}"
    )
    assert set(tmpl.identifiers()) == {"Messages", "$", "System", "Role", "Tools"}


# ---------------------------------------------------------------------------------------------
# Chat rendering, as Ollama does it
# ---------------------------------------------------------------------------------------------


def test_collate() -> None:
    msgs = [
        Message("system", "s1"),
        Message("system", "s2"),
        Message("user", "a"),
        Message("user", "b"),
        Message("tool", "t1"),
        Message("tool", "t2"),
    ]
    system, merged = collate(msgs)
    assert system == "s1\n\ns2"
    assert [(m.role, m.content) for m in merged] == [
        ("system", "s1\n\ns2"),
        ("user", "a\n\nb"),
        ("tool", "t1"),
        ("tool", "t2"),
    ]


def test_messages_template_values() -> None:
    source = (
        "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}|{{ .Response }}"
    )
    msgs = [Message("system", "A"), Message("user", "hi"), Message("system", "B")]
    assert render_chat(source, msgs) == "A\n\nB|system:A;user:hi;system:B;|"


def test_template_vars_and_response_append() -> None:
    legacy = parse_template("{{ .System }} {{ .Prompt }}")
    assert legacy.vars == {"system", "prompt"}
    assert not legacy.uses_messages
    # Ollama appends {{ .Response }} when a template mentions neither .Messages nor .Response.
    assert legacy.execute(
        TemplateValues(messages=(Message("user", "q"), Message("assistant", "r")))
    ) == (" qr")
    assert "tools" in parse_template("{{ range .Messages }}{{ end }}{{ if .Tools }}{{ end }}").vars
    assert parse_template("{{ range $.Messages }}{{ end }}").uses_messages


def test_legacy_one_render_per_exchange() -> None:
    source = "<s>{{ if .System }}[{{ .System }}] {{ end }}{{ .Prompt }} => {{ .Response }}</s>"
    msgs = [
        Message("system", "sys"),
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "q2"),
    ]
    # The last exchange is cut right after {{ .Response }}, so "</s>" is not written for it.
    assert render_chat(source, msgs) == "<s>[sys] q1 => a1</s><s>q2 => "
    # A trailing assistant message is continued, not closed.
    assert render_chat(source, [*msgs, Message("assistant", "partial")]) == (
        "<s>[sys] q1 => a1</s><s>q2 => partial"
    )
    # A system message after an exchange starts a new render.
    msgs2 = [
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("system", "s2"),
        Message("user", "q2"),
    ]
    assert render_chat(source, msgs2) == "<s>q1 => a1</s><s>[s2] q2 => "


def test_legacy_template_without_response() -> None:
    source = "[INST] {{ .Prompt }} [/INST]"
    msgs = [Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    assert render_chat(source, msgs) == "[INST] a [/INST]b[INST] c [/INST]"


def test_legacy_and_messages_templates_agree() -> None:
    legacy = (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
    )
    msgs = CONVERSATIONS["system-user-assistant-user"]
    expected = SHARED_TEMPLATES / "expected" / "chatml.gotmpl" / "system-user-assistant-user"
    assert render_chat(legacy, msgs) == expected.read_text(encoding="utf-8")
    # force_legacy renders a .Messages template with .System/.Prompt/.Response only.
    tmpl = parse_template("{{ range .Messages }}x{{ end }}[{{ .Prompt }}]")
    values = TemplateValues(messages=tuple(msgs), force_legacy=True)
    assert (
        tmpl.execute(values)
        == "[Hello, how are you?][I'd like to show off how chat templating works!]"
    )


def test_suffix_values() -> None:
    tmpl = parse_template(
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
        "{{- else }}{{ .Prompt }}{{- end }}"
    )
    assert (
        tmpl.execute(TemplateValues(prompt="def f(", suffix="return 1"))
        == "<PRE> def f( <SUF>return 1 <MID>"
    )
    assert tmpl.execute(TemplateValues(messages=(Message("user", "hello"),))) == "hello"


def test_render_chat_system_rule() -> None:
    source = "{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}"
    assert render_chat(source, [Message("user", "u")], system="S") == "system=S;user=u;"
    assert render_chat(source, [Message("system", "own"), Message("user", "u")], system="S") == (
        "system=own;user=u;"
    )
    assert render_chat(source, [{"role": "USER", "content": "json"}]) == "user=json;"


def test_think_values() -> None:
    assert think_values(None) == (False, "", False)
    assert think_values(True) == (True, "medium", True)
    assert think_values(False) == (False, "", True)
    assert think_values("high") == (True, "high", True)
    # Ollama HEAD's ThinkValue.Bool: "max" is a level that thinks too.
    assert think_values("max") == (True, "max", True)
    source = "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ range .Messages }}{{ end }}"
    assert render_chat(source, [HELLO], think=True) == "true medium true"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {
                "unit": {"type": "string", "enum": ["c", "f"]},
                "city": {"type": "string", "description": "The city"},
            },
        },
    },
}


def test_tools_in_templates() -> None:
    source = (
        "{{ range .Tools }}{{ . }}{{ end }}|{{ json .Tools }}|"
        "{{ range $n, $p := (index .Tools 0).Function.Parameters.Properties }}"
        "{{ $n }}:{{ $p.Type }},{{ end }}"
        "{{ range .Messages }}{{ range .ToolCalls }}"
        "|{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ end }}"
    )
    tool_json = (
        '{"type":"function","function":{"name":"get_weather","description":"Get the weather",'
        '"parameters":{"type":"object","required":["city"],"properties":{'
        '"city":{"type":"string","description":"The city"},'
        '"unit":{"type":"string","enum":["c","f"]}}}}}'
    )
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}}}
            ],
        },
    ]
    out = render_chat(source, msgs, tools=[WEATHER_TOOL])
    assert out == (
        f"{tool_json}|[{tool_json}]|city:string,unit:string,"
        '|get_weather{"city":"Paris","unit":"c"}'
    )
    # No tools is a nil Go slice: false, and JSON null.
    assert (
        render_chat("{{ if .Tools }}T{{ end }}{{ json .Tools }}{{ .Messages }}", [HELLO])
        == "null[&{user Hello, how are you?  [] []  }]"
    )
    assert Tool.from_json(WEATHER_TOOL).function.parameters.properties is not None


def test_command_r_with_tools() -> None:
    source = builtin_template("command-r").template
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "sunny"},
    ]
    out = render_chat(source, msgs, tools=[WEATHER_TOOL])
    assert "def get_weather(city: string, unit: string, ) -> List[Dict]:" in out
    assert "        city (string): The city\n" in out
    assert '"tool_name": "get_weather",\n        "parameters": {"city":"Paris"}' in out
    assert "<|SYSTEM_TOKEN|><results>\nconsole_output: sunny\n</results>" in out


def test_tool_structs_print_as_json() -> None:
    """Ollama's `ToolFunction`, `ToolFunctionParameters` and the call arguments print as JSON
    (their `String()` methods), which templates such as Qwen's depend on."""
    source = (
        "{{ range .Tools }}"
        '{"type": "function", "function": {{ .Function }}}\n'
        "{{ .Function.Parameters }}\n"
        "{{ end }}"
        "{{ range .Messages }}{{ range .ToolCalls }}"
        '{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}'
        "{{ end }}{{ end }}"
    )
    params = (
        '{"type":"object","required":["city"],"properties":{'
        '"city":{"type":"string","description":"The city"},'
        '"unit":{"type":"string","enum":["c","f"]}}}'
    )
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
    ]
    out = render_chat(source, msgs, tools=[WEATHER_TOOL])
    assert out == (
        '{"type": "function", "function": {"name":"get_weather",'
        f'"description":"Get the weather","parameters":{params}}}}}\n'
        f"{params}\n"
        '{"name": "get_weather", "arguments": {"city":"Paris"}}'
    )
    # A function without a description leaves it out (omitempty), as Go's JSON does.
    bare = {"type": "function", "function": {"name": "now"}}
    assert render_chat(
        "{{ if .Messages }}{{ end }}{{ range .Tools }}{{ .Function }}{{ end }}",
        [HELLO],
        tools=[bare],
    ) == ('{"name":"now","parameters":{"type":"","properties":null}}')
