"""The package's layout stays true: imports point down the layers, and no module imports itself
back through others. Every import counts, including those inside functions: a late import hides a
cycle from Python, not from this test."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_ollama"

# Each part and the parts it may import (besides itself), lowest first: cli -> api -> scheduler
# -> runner client / store -> leaf modules. Nothing may import a part that is not listed for it.
RUNNER_CHILD = "runner, the child's side"
_RUNNER_CHILD_MODULES = {
    f"trio_ollama.runner.{name}"
    for name in (
        "server",
        "engine",
        "fake",
        "text",
        "interface",
        "vision",
        "repack",
        "attention",
        "__main__",
    )
}
_LEAVES = {
    "trio_ollama.gocompat",
    "trio_ollama.version",
    "trio_ollama.cpus",
    "trio_ollama.concurrency",
    "trio_ollama.logs",
    # The cut of a prompt to the context window: one rule for the engine and for the parent.
    "trio_ollama.runner.window",
    # A request's `format` turned into a grammar: checked by the parent, compiled by the child.
    "trio_ollama.runner.grammar",
    # An image's header read: checked by the parent, its pixel bound kept by the child too.
    "trio_ollama.images",
    # Which server takes a request for a model: one rule for the simulator and the fleet.
    "trio_ollama.routing",
}
_FACTS = _LEAVES | {
    "trio_ollama.names",
    "trio_ollama.gguf_info",
    "trio_ollama.config",
    "trio_ollama.config_file",
}
ALLOWED: dict[str, set[str]] = {
    "trio_ollama.gocompat": set(),
    "trio_ollama.version": set(),
    "trio_ollama.cpus": set(),
    "trio_ollama.concurrency": set(),
    "trio_ollama.logs": set(),
    "trio_ollama.runner.window": set(),
    "trio_ollama.runner.grammar": set(),
    "trio_ollama.images": set(),
    "trio_ollama.routing": set(),
    "trio_ollama.names": {"trio_ollama.gocompat"},
    "trio_ollama.gguf_info": {"trio_ollama.gocompat"},
    "trio_ollama.config_file": {"trio_ollama.gocompat", "trio_ollama.names"},
    "trio_ollama.config": {"trio_ollama.gocompat", "trio_ollama.logs", "trio_ollama.config_file"},
    "trio_ollama.options": _FACTS,
    "trio_ollama.templates": {"trio_ollama.gocompat"},
    "trio_ollama.store": _FACTS | {"trio_ollama.options", "trio_ollama.templates"},
    # The runner is two programs over one protocol: the parent's side (client, process) and the
    # child's (server, engine, fake: `python -m trio_ollama.runner`). Nothing above the runner
    # reaches the child's side, except the test support that serves it in-process.
    "trio_ollama.runner.protocol": _FACTS | {"trio_ollama.options"},
    "trio_ollama.runner": _FACTS | {"trio_ollama.options", "trio_ollama.runner.protocol"},
    RUNNER_CHILD: _FACTS | {"trio_ollama.options", "trio_ollama.runner.protocol"},
    "trio_ollama.runner.inprocess": _FACTS
    | {"trio_ollama.runner", "trio_ollama.runner.protocol", RUNNER_CHILD},
    "trio_ollama.scheduler": _FACTS
    | {"trio_ollama.options", "trio_ollama.runner", "trio_ollama.runner.protocol"},
    # Reading model output (tool calls, thinking): below the API layers, beside the prompt.
    "trio_ollama.parsers": _FACTS | {"trio_ollama.templates"},
    # Writing a family's prompt in code (a model's RENDERER), beside the templates.
    "trio_ollama.renderers": _FACTS | {"trio_ollama.templates"},
    "trio_ollama.prompt": _FACTS
    | {
        "trio_ollama.store",
        "trio_ollama.templates",
        "trio_ollama.parsers",
        "trio_ollama.renderers",
    },
    "trio_ollama.specs": _FACTS | {"trio_ollama.store", "trio_ollama.scheduler"},
    "trio_ollama.testing": _FACTS
    | {
        "trio_ollama.runner",
        "trio_ollama.runner.protocol",
        "trio_ollama.runner.inprocess",
        RUNNER_CHILD,
        "trio_ollama.scheduler",
    },
    # Pull and push: the OCI distribution protocol, writing into the store.
    "trio_ollama.registry": _FACTS | {"trio_ollama.store"},
    "trio_ollama.api": _FACTS
    | {
        "trio_ollama.options",
        "trio_ollama.templates",
        "trio_ollama.store",
        "trio_ollama.registry",
        "trio_ollama.runner",
        "trio_ollama.runner.protocol",
        "trio_ollama.scheduler",
        "trio_ollama.prompt",
        "trio_ollama.parsers",
        "trio_ollama.specs",
    },
    # The command line is a client of the HTTP API; it starts the server (`serve`) and sets up
    # the store, and shares the option and name rules, but never reaches past them.
    "trio_ollama.cli": _FACTS
    | {
        "trio_ollama.options",
        "trio_ollama.store",
        "trio_ollama.api",
        "trio_ollama.bench",
        "trio_ollama.sim",
        "trio_ollama.fleet",
    },
    # The load generator is a client of any server: nothing of this one's insides.
    "trio_ollama.bench": set(),
    # The simulator drives the real scheduler with the load generator's specs and results.
    "trio_ollama.sim": _FACTS
    | {
        "trio_ollama.store",
        "trio_ollama.specs",
        "trio_ollama.bench",
        "trio_ollama.runner",
        "trio_ollama.runner.protocol",
        "trio_ollama.scheduler",
        "trio_ollama.testing",
    },
    # Scale-out on Ray Serve: a replica runs the server as a program, never its insides; the
    # routing rule is the simulator's.
    "trio_ollama.fleet": _FACTS,
    "trio_ollama.__main__": {"trio_ollama.cli"},
    # The package root: the curated public surface, over everything.
    "trio_ollama": {
        "trio_ollama.config",
        "trio_ollama.scheduler",
        "trio_ollama.specs",
        "trio_ollama.store",
        "trio_ollama.version",
        "trio_ollama.api",
    },
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The trio_ollama modules `name` imports, anywhere in its body, with line numbers."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("trio_ollama"):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("trio_ollama"):
                continue
            for alias in node.names:
                # `from pkg import mod` imports the submodule; `from pkg import name` the package.
                sub = f"{base}.{alias.name}"
                yield (sub if sub in modules else base), node.lineno


def part_of(module: str) -> str:
    if module in _RUNNER_CHILD_MODULES:
        return RUNNER_CHILD
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len)


def allowed(source: str, target: str) -> bool:
    src, dst = part_of(source), part_of(target)
    return src == dst or dst in ALLOWED[src]


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {
        name: {target for target, _ in imports_of(name, path, modules) if target != name}
        for name, path in modules.items()
    }


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in all_modules() if part_of(m) == "trio_ollama" and m != "trio_ollama"]
    assert unplaced == [], f"add these to ALLOWED: {unplaced}"


def layer_violations() -> list[str]:
    modules = all_modules()
    found = []
    for name, path in modules.items():
        for target, line in imports_of(name, path, modules):
            if not allowed(name, target):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} -> {target}")
    return found


def test_imports_point_down() -> None:
    assert layer_violations() == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


# The checks above must be able to fail: each is shown a small case it has to catch.


def test_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("trio_ollama.api.app", "trio_ollama.scheduler.core", True),
        ("trio_ollama.scheduler.core", "trio_ollama.api.errors", False),  # upwards
        ("trio_ollama.scheduler.types", "trio_ollama.store", False),  # sideways
        ("trio_ollama.runner.protocol", "trio_ollama.scheduler", False),
        ("trio_ollama.runner.protocol", "trio_ollama.runner.client", False),
        ("trio_ollama.runner.fake", "trio_ollama.runner.interface", True),  # own side
        ("trio_ollama.runner.client", "trio_ollama.runner.server", False),  # across the socket
        ("trio_ollama.scheduler.core", "trio_ollama.runner.engine", False),
        ("trio_ollama.api.service", "trio_ollama.runner.fake", False),
        ("trio_ollama.testing.simulation", "trio_ollama.runner.fake", True),
        ("trio_ollama.gocompat.gojson", "trio_ollama.config", False),
        ("trio_ollama.cli.main", "trio_ollama.runner.client", False),
    ],
)
def test_allowed_rule(source: str, target: str, expected: bool) -> None:
    assert allowed(source, target) is expected


def test_every_part_reachable_only_downwards() -> None:
    # The allowed map itself has no cycle: the layers are a true order.
    edges = {part: set(deps) for part, deps in ALLOWED.items()}
    assert cycles(edges) == []
