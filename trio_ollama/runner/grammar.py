"""A `format`'s grammar, and the bounds a JSON schema must keep before any grammar is made.

A schema becomes GBNF through llama-cpp-python's converter (`llama_grammar.json_schema_to_gbnf`)
and runs in llama.cpp's grammar sampler. Neither bounds its work, and a small schema can cost
without limit (issue 29's figures, and ours with SmolLM2-135M's 49,152 tokens on this 2-core
machine):

- A repetition is written out in full. `minLength: N` is N copies of the character rule, built
  in the runner's decode step, where every other request on the runner waits: 3*10**7 took 9 s,
  10**8 40 s, and 10**9 grew the runner to 6 GB.
- `maxLength: N` (as `maxItems` and a pattern's `{m,n}`) nests N - m optional groups,
  `(char (char ...)?)?`. llama.cpp's parser refuses more than 1000 (1000 is accepted, 1001 is
  not), but only after recursing through all of them: 10,000 was refused, 100,000 overflowed
  the runner's stack (SIGSEGV).
- Each alternative that can start at one place (an enum's value, a branch of `anyOf`, an
  optional property after "{") is a stack the sampler tries the whole vocabulary against, at
  every token that place is live: an enum of 10 values cost 0.02 s a token, 256 values 0.1 s,
  1,000 values 0.34 s, 10,000 values 2.9 s; 100,000 gave no answer in 90 s.
- `$ref`s to unions of `$ref`s multiply: 7 levels of 10 (a 1.5 KB schema) took llama.cpp 3.6 s
  to set up, ten times longer for each level more.
- Rule names grow with the path: a long property name repeated through `minItems`, or nested
  deep, makes a grammar far larger than its schema.

`format_problem` bounds all of these on the schema itself, in time linear in its size, before a
grammar is built: the API calls it before it leases a runner (a refused schema holds no slot
and loads no model), and the runner calls it again through `format_grammar` (library users
reach the runner without the API). The limits, measured:

- `REPEAT_LIMIT`: 1000 for every count (`minLength`, `maxLength`, `minItems`, `maxItems`, a
  pattern's `{m,n}`), the most nested optional groups llama.cpp's parser accepts; llama.cpp's
  own converter (Ollama's) refuses counts of 2000 and more.
- `ALTERNATIVES_LIMIT`: 256 alternatives at one place cost about 0.1 s a token there (against
  0.02 s for 10), and 256 optional properties 0.1 s to convert (the converter is quadratic).
- `DEPTH_LIMIT`: 64 levels of nesting (`$ref` hops included); the converter recurses in
  Python, and names grow with depth (300 levels made a 1 MB grammar).
- `GRAMMAR_LIMIT`: 256 KB of GBNF; a 1 MB grammar took 0.04 s to build and 0.09 s to set up.
- `SCHEMA_LIMIT`: 1,000,000 characters of schema are parsed in about 15 ms (the API does it on
  its event loop, as it parses the request).

Keywords the converter ignores (`minProperties`, `maximum`, ...) cost nothing and are not
bounded.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import attrs

INVALID = "invalid JSON schema in format"
REPEAT_LIMIT = 1000
ALTERNATIVES_LIMIT = 256
DEPTH_LIMIT = 64
GRAMMAR_LIMIT = 256 * 1024
SCHEMA_LIMIT = 1_000_000

# What a pattern's `{m}`, `{m,}`, `{m,n}` reads as; also matches some braces the converter reads
# as text (`\{12\}`), which only makes the bound stricter there.
_QUANTIFIER = re.compile(r"\{([^}]*)\}")
# The converter's built-in rules (`char`, `string`, `date-time`, ...), all of them: under 2 KB.
_BUILTIN_BYTES = 4096
# What a named rule costs besides its name: " ::= ", a reference's spaces, a "-kv" or "-item"
# suffix, the digits `_add_rule` appends to a name already taken.
_RULE_BYTES = 16


class FormatError(ValueError):
    """A `format` that is neither "json" nor a usable JSON schema."""


def format_problem(fmt: str) -> str | None:
    """Why a `format`'s grammar would cost more than the limits above, in the API's words
    ("invalid JSON schema in format: ..."); None when it would not. "" and "json" cost
    nothing; text that is not a JSON object is left for the converter to refuse."""
    if fmt in ("", "json"):
        return None
    if len(fmt) > SCHEMA_LIMIT:
        return f"{INVALID}: the schema is {len(fmt)} characters long, more than {SCHEMA_LIMIT}"
    try:
        schema = json.loads(fmt)
        if isinstance(schema, dict):
            _Walk(schema).node(schema, 0, 0)
    except RecursionError:
        return f"{INVALID}: nested more than {DEPTH_LIMIT} deep"
    except FormatError as exc:
        return str(exc)
    except ValueError:
        pass  # not JSON: the converter says so
    return None


@functools.lru_cache(maxsize=16)
def format_grammar(fmt: str) -> str:
    """GBNF for Ollama's `format`: "json" or a JSON schema (as its `llm/server.go` turns either
    into a grammar), within the bounds of `format_problem`. Kept for the last few formats:
    clients send the same schema again."""
    from llama_cpp import llama_grammar

    if fmt == "json":
        return str(llama_grammar.JSON_GBNF)
    if (problem := format_problem(fmt)) is not None:
        raise FormatError(problem)
    try:
        grammar = str(llama_grammar.json_schema_to_gbnf(fmt))
    except (AssertionError, ValueError) as exc:  # its own refusals ("Unrecognized schema: ...")
        text = str(exc)
        shown = text if len(text) <= 200 else text[:200] + "..."
        raise FormatError(f"{INVALID}: {shown}") from exc
    except Exception as exc:  # Python's, where the converter meets a value of another type
        raise FormatError(f"{INVALID}: a keyword's value has the wrong type") from exc
    # `format_problem` bounds an estimate from above; this is the real thing, should it not.
    if len(grammar) > GRAMMAR_LIMIT:
        raise FormatError(f"{INVALID}: its grammar would be more than {GRAMMAR_LIMIT} bytes")
    return grammar


@attrs.define
class _Walk:
    """One pass over a schema, as the converter would go through it: every limit checked as
    it is met, and `size` an upper bound on the grammar's bytes so far. `node` returns how
    many alternatives start where a schema starts (what a union of it adds up)."""

    root: dict[str, Any]
    size: int = _BUILTIN_BYTES
    # A `$ref`'s alternatives: the converter makes its rule once, and so does this walk.
    refs: dict[str, int] = attrs.field(factory=dict)
    targets: dict[str, Any] = attrs.field(factory=dict)
    resolving: set[str] = attrs.field(factory=set)

    def node(self, schema: Any, name: int, depth: int) -> int:
        """Walks `schema`, whose rule's name is `name` characters long, `depth` levels down."""
        if depth > DEPTH_LIMIT:
            raise FormatError(f"{INVALID}: nested more than {DEPTH_LIMIT} deep")
        if not isinstance(schema, dict):
            return 1  # the converter refuses it, cheaply
        self.grow(3 * (name + _RULE_BYTES))
        lead = 0
        ref = schema.get("$ref")
        if isinstance(ref, str):
            lead += self.ref(ref, depth)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list):
                lead += sum(self.node(sub, name + _RULE_BYTES, depth + 1) for sub in branches)
        types = schema.get("type")
        if isinstance(types, list):
            lead += len(types)
        enum = schema.get("enum")
        if isinstance(enum, list):
            if len(enum) > ALTERNATIVES_LIMIT:
                raise FormatError(
                    f"{INVALID}: enum has {len(enum)} values, more than {ALTERNATIVES_LIMIT}"
                )
            lead += len(enum)
            for value in enum:
                self.literal(value)
        if "const" in schema:
            self.literal(schema["const"])
        self.object(schema, name, depth)
        self.array(schema, name, depth)
        self.string(schema, name)
        lead = max(lead, 1)
        if lead > ALTERNATIVES_LIMIT:
            raise FormatError(
                f"{INVALID}: {lead} alternatives at one place, more than {ALTERNATIVES_LIMIT}"
            )
        return lead

    def ref(self, ref: str, depth: int) -> int:
        self.grow(len(ref))  # the rule that names it
        if ref in self.refs:
            return self.refs[ref]
        target = self.resolve(ref)
        if target is None or ref in self.resolving:
            return 1  # one the converter refuses, or a rule that refers to itself
        self.resolving.add(ref)
        lead = self.node(target, len(ref), depth + 1)
        self.resolving.discard(ref)
        self.refs[ref] = lead
        return lead

    def resolve(self, ref: Any) -> Any:
        """The schema a local `$ref` ("#/$defs/x") names, as the converter finds it; None for
        any other (the converter refuses those)."""
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return None
        if ref not in self.targets:
            target: Any = self.root
            for part in ref[2:].split("/"):
                if not isinstance(target, dict) or part not in target:
                    target = None
                    break
                target = target[part]
            self.targets[ref] = target
        return self.targets[ref]

    def object(self, schema: dict[str, Any], name: int, depth: int) -> None:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        # Not grammar, but read again each time `allOf` brings this schema back: charged so.
        self.grow(len(required))
        names = {r for r in required if isinstance(r, str)}
        optional = sum(1 for key in properties if key not in names)
        additional = schema.get("additionalProperties")
        if additional is True or isinstance(additional, dict):
            optional += 1
            self.node(additional, name + 2 * _RULE_BYTES, depth + 1)
        self.properties(properties, name, depth)
        # `allOf` merges its parts' properties into this object: the converter goes through a
        # part's properties each time it is used (a `$ref`'s too), with this object's name.
        # A part's `anyOf` choices are merged too, their properties optional.
        parts = schema.get("allOf")
        for part in parts if isinstance(parts, list) else ():
            choices = part.get("anyOf") if isinstance(part, dict) else None
            for sub in choices if isinstance(choices, list) else [part]:
                if isinstance(sub, dict) and "$ref" in sub:
                    sub = self.resolve(sub["$ref"])
                found = sub.get("properties") if isinstance(sub, dict) else None
                if isinstance(found, dict):
                    if isinstance(choices, list):
                        optional += len(found)
                    self.properties(found, name, depth)
        # After "{", each optional property may come first.
        if optional > ALTERNATIVES_LIMIT:
            raise FormatError(
                f"{INVALID}: {optional} optional properties, more than {ALTERNATIVES_LIMIT}"
            )

    def properties(self, properties: dict[str, Any], name: int, depth: int) -> None:
        for key, sub in properties.items():
            child = name + 1 + len(key)
            # The key's literal; its "-kv" rule and, when optional, its "-rest" rule, each
            # named after it and naming the next.
            self.grow(2 * len(json.dumps(key)) + 8 * (child + _RULE_BYTES))
            self.node(sub, child, depth + 1)

    def array(self, schema: dict[str, Any], name: int, depth: int) -> None:
        for key in ("items", "prefixItems"):
            items = schema.get(key)
            if isinstance(items, dict):
                self.node(items, name + _RULE_BYTES, depth + 1)
            elif isinstance(items, list):
                for sub in items:
                    self.node(sub, name + 2 * _RULE_BYTES, depth + 1)
        # Each copy names the item's rule and the separator: '"," space item-rule'.
        self.repeat(schema, "minItems", "maxItems", name + 2 * _RULE_BYTES)

    def string(self, schema: dict[str, Any], name: int) -> None:
        self.repeat(schema, "minLength", "maxLength", len("(char )?"))
        pattern = schema.get("pattern")
        if not isinstance(pattern, str):
            return
        self.grow(2 * len(pattern.encode()))
        if pattern.count("|") + 1 > ALTERNATIVES_LIMIT:
            raise FormatError(
                f"{INVALID}: pattern has {pattern.count('|') + 1} alternatives, "
                f"more than {ALTERNATIVES_LIMIT}"
            )
        for match in _QUANTIFIER.finditer(pattern):
            copies = 0
            for part in match.group(1).split(","):
                try:
                    count = int(part.strip())  # as the converter reads it
                except ValueError:
                    continue  # not a count: the converter reads it as text, or refuses it
                if count > REPEAT_LIMIT:
                    raise FormatError(
                        f"{INVALID}: pattern repeats {count} times, more than {REPEAT_LIMIT}"
                    )
                copies += max(count, 0)
            # A copy is a character, or the name of a rule made of the repeated group.
            self.grow(copies * (name + 2 * _RULE_BYTES))

    def repeat(self, schema: dict[str, Any], low: str, high: str, each: int) -> None:
        """A repetition written out: `low` copies of `each` bytes, and up to `high`."""
        counts = {key: self.count(schema, key) for key in (low, high)}
        self.grow((counts[low] + max(counts[high] - counts[low], 0)) * each)

    @staticmethod
    def count(schema: dict[str, Any], key: str) -> int:
        value = schema.get(key, 0)
        if not isinstance(value, int):
            return 0  # the converter refuses a count that is not an integer
        if value > REPEAT_LIMIT:
            raise FormatError(f"{INVALID}: {key} {value} is more than {REPEAT_LIMIT}")
        return max(value, 0)

    def literal(self, value: Any) -> None:
        try:
            text = json.dumps(value)
        except (RecursionError, ValueError):
            return  # the converter fails on it too
        self.grow(2 * len(text) + _RULE_BYTES)  # a literal escapes '"' and line breaks

    def grow(self, size: int) -> None:
        self.size += size
        if self.size > GRAMMAR_LIMIT:
            raise FormatError(f"{INVALID}: its grammar would be more than {GRAMMAR_LIMIT} bytes")
