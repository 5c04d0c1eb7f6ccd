"""The docs say what the code does: the examples in docs/ run as written, every module the README
and docs/design.md name exists, every package and top-level module is named there, and the
texts docs/policies.md promises are the ones the scheduler answers with."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.templates_with_tools import TOOLS_TEMPLATE
from trio_ollama import LoadFailed, Settings, open_scheduler
from trio_ollama.config_file import ModelPolicy, Policies
from trio_ollama.gocompat.format import GiB
from trio_ollama.store import Store
from trio_ollama.store.default_model import DEFAULT_MODEL, ensure_default_model
from trio_ollama.store.modelfile import parse_modelfile
from trio_ollama.testing import FakeDevices, FakeRunners, fake_model

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = ROOT / "trio_ollama"


def code_block(page: str) -> str:
    match = re.search(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
    assert match, f"{page} has no python example"
    return match.group(1)


@pytest.mark.slow  # the real model
def test_scheduler_example_runs(tmp_path: Path, default_gguf: Path) -> None:
    ensure_default_model(Store(tmp_path / "models"))
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(code_block("scheduler.md"), "docs/scheduler.md", "exec"), namespace)
    answers = trio.run(namespace["main"], str(tmp_path / "models"))  # type: ignore[arg-type]
    assert len(answers) == 2 and all(answers)
    assert any("Paris" in a for a in answers)


def test_the_readme_begins_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:3] == ["# trio-ollama", "", "```sh"]
    assert lines[3].startswith("./dev serve ") and lines[4].startswith("./dev test ")


# ----- the layout, as the README and docs/design.md tell it


def packages() -> list[str]:
    """Every package of trio_ollama, as a path relative to it: `api/`, `gocompat/template/`."""
    return sorted(
        f"{p.parent.relative_to(PACKAGE).as_posix()}/"
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    )


def top_level_modules() -> list[str]:
    return sorted(p.name for p in PACKAGE.glob("*.py"))


def exists(path: str, inside: Path = PACKAGE) -> bool:
    """`x.py`, `x/` (a package) or `x` (either) under `inside`; dots or slashes between parts."""
    parts = path.rstrip("/").removesuffix(".py").replace(".", "/")
    base = inside / parts
    if path.endswith("/"):
        return (base / "__init__.py").is_file()
    if path.endswith(".py"):
        return base.with_suffix(".py").is_file()
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def readme_tree() -> dict[str, str]:
    """The README's layout tree: each entry's name(s) and its description (continuations too)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```\ntrio_ollama/\n(.*?)```", text, re.S)
    assert match, "the README has no layout tree"
    entries: dict[str, str] = {}
    last = ""
    for line in match.group(1).splitlines():
        body = re.sub(r"^[│├└─\s]+", "", line) if re.match(r"^[├└]", line) else ""
        if not body:  # a continuation of the last entry's description
            entries[last] += " " + line.strip("│ ")
            continue
        names, *description = re.split(r"\s{2,}", body, maxsplit=1)
        last = names
        entries[names] = " ".join(description)
    return entries


def design_rows() -> dict[str, str]:
    """docs/design.md's package table: the first cell's text and the second's."""
    text = (DOCS / "design.md").read_text()
    section = text.split("## Packages", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0]] = cells[1]
    assert rows, "docs/design.md has no package table"
    return rows


def named(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def outside_parentheses(text: str) -> str:
    depth, kept = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def module_paths(text: str) -> list[str]:
    """What a page names as code: `trio_ollama/...` paths, `trio_ollama.x.y` dotted names,
    `python -m x.y` modules, and `tests/`, `benchmarks/` and `docs/` files."""
    found = [
        m.group()
        for m in re.finditer(r"\btrio_ollama(?:[./][A-Za-z_]\w*)+/?", text)
        if not text[m.end() :].startswith("` logger")  # a logger's name, not a module
    ]
    found += [f"module:{m}" for m in re.findall(r"python -m ([\w.]+)", text)]
    found += [f"file:{m}" for m in re.findall(r"\b((?:tests|benchmarks|docs)/[\w/.-]*\w)", text)]
    # `runner/protocol.py`: a module by its path inside the package.
    found += [
        f"file:trio_ollama/{m}"
        for m in re.findall(r"`((?:\w+/)+\w+\.py)`", text)
        if not m.startswith(("tests/", "benchmarks/", "docs/", "trio_ollama/"))
    ]
    return found


def found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent is not a package either
        return False


def resolves(name: str) -> bool:
    if name.startswith("file:"):
        return (ROOT / name[5:]).exists()
    if name.startswith("module:"):
        return found(name[7:])
    if "/" in name:
        return exists(name.removeprefix("trio_ollama/")) if name != "trio_ollama/" else True
    # A dotted name: the longest prefix that is a module, then at most one attribute of it.
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if found(module):
            rest = parts[cut:]
            return len(rest) <= 1 and (
                not rest or hasattr(importlib.import_module(module), rest[0])
            )
    return False


@pytest.mark.parametrize("page", ["README.md", "docs/design.md", "docs/agents.md"])
def test_every_module_path_a_page_names_exists(page: str) -> None:
    text = (ROOT / page).read_text()
    missing = [name for name in module_paths(text) if not resolves(name)]
    assert missing == [], f"{page} names what is not there"


def test_the_readme_tree_names_every_package_and_top_level_module_and_only_those() -> None:
    tree = readme_tree()
    listed = {name for entry in tree for name in entry.split(", ")}
    missing = [p for p in [*top_level_modules(), *packages()] if p.count("/") <= 1]
    assert sorted(set(missing) - listed) == []
    assert sorted(name for name in listed if not exists(name)) == []
    # A package's description names its own modules: those must be in it.
    wrong = [
        f"{entry}{module}"
        for entry, description in tree.items()
        if entry.endswith("/")
        for module in re.findall(r"\b(\w+\.py)\b", description)
        if not exists(entry + module)
    ]
    assert wrong == []


def test_the_design_table_names_every_package_and_top_level_module() -> None:
    rows = design_rows()
    first_cells = {name for cell in rows for name in named(cell)}
    assert sorted({*top_level_modules(), *packages()} - first_cells - nested(rows)) == []
    assert sorted(name for name in first_cells if not exists(name)) == []
    # A package's row names its modules outside parentheses (inside them: what they hold).
    wrong = []
    for cell, description in rows.items():
        for package in (n for n in named(cell) if n.endswith("/")):
            for module in named(outside_parentheses(description)):
                # A dotted name is a path from the package root; else a module of the row's.
                ok = exists(module) if "." in module else exists(package + module)
                if not ok:
                    wrong.append(f"{package}{module}")
    assert wrong == []


def nested(rows: dict[str, str]) -> set[str]:
    """Packages inside packages that their parent's row names (`gocompat/template/`)."""
    found = set()
    for cell, description in rows.items():
        for package in (n for n in named(cell) if n.endswith("/")):
            for sub in named(outside_parentheses(description)):
                if sub.endswith("/") and exists(package + sub):
                    found.add(package + sub)
    return found


def test_the_layout_checks_would_see_a_missing_or_unnamed_module() -> None:
    """The checks above, on a page that names a module that is not there, and without a
    package: the helpers notice both."""
    assert not resolves("trio_ollama/scheduler/nowhere.py")
    assert not resolves("trio_ollama.scheduler.nowhere.deeper")
    assert resolves("trio_ollama/runner/connection.py") and resolves("trio_ollama.serve")
    assert "sim/" in packages() and "config_file.py" in top_level_modules()
    assert outside_parentheses("`a` (`b`), `c`") == "`a` , `c`"


# ----- docs/policies.md's texts


def policy_texts() -> list[str]:
    """The plain code blocks of docs/policies.md: where it quotes what the server says."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", (DOCS / "policies.md").read_text(), re.M | re.S)
    return [body.strip("\n") for language, body in blocks if not language]


async def refusal(settings: Settings, devices: FakeDevices, sizes: dict[str, int]) -> str:
    """What a request for `c` hears once `a` and `b` (pinned) are loaded."""
    pinned = Policies(models={"a": ModelPolicy(pinned=True), "b": ModelPolicy(pinned=True)})
    settings = attrs.evolve(settings, policies=pinned)
    runners = FakeRunners(devices)
    async with open_scheduler(settings, runner_factory=runners, devices=devices) as scheduler:
        for name in ("a", "b"):
            async with scheduler.acquire(fake_model(name, sizes[name])):
                pass
        with pytest.raises(LoadFailed) as refused:
            async with scheduler.acquire(fake_model("c", sizes["c"])):
                pass  # pragma: no cover
        assert sorted(scheduler.loaded) == ["/fake/a", "/fake/b"], "nothing was unloaded"
    return str(refused.value)


async def test_a_load_refused_beside_pinned_models_reads_as_the_policies_page_says(
    autojump_clock: Any,
) -> None:
    """Both reasons a pinned model can block a load, memory and OLLAMA_MAX_LOADED_MODELS, say
    "does not fit beside the pinned models", word for word as docs/policies.md quotes them."""
    roomy = FakeDevices()
    by_count = await refusal(
        Settings.from_env({"OLLAMA_MAX_LOADED_MODELS": "2"}), roomy, dict(a=GiB, b=GiB, c=GiB)
    )
    from trio_ollama.scheduler.devices import SystemMemory

    tight = FakeDevices(system=SystemMemory(total=3 * GiB, free=3 * GiB, free_swap=0))
    by_memory = await refusal(Settings.from_env({}), tight, dict(a=GiB, b=GiB, c=3 * GiB // 2))
    assert by_memory != by_count
    for said in (by_memory, by_count):
        assert "does not fit beside the pinned models (a, b)" in said
        assert said in policy_texts(), f"docs/policies.md does not quote {said!r}"


# What a reader of the repository can open: files here, and Ollama's source by path.
_OUTSIDE_CITATIONS = ("reference" + " §", "DESIGN" + " §")  # spelled apart: not a hit here
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".jsonl", ".gotmpl"}


def test_no_comment_cites_a_document_outside_the_repository() -> None:
    """Comments and docs point at a file in the repository or at Ollama's source by path
    (docs/design.md says which version), never at numbered sections of notes kept elsewhere."""
    files = [ROOT / "README.md"] + [
        path
        for folder in ("trio_ollama", "tests", "docs")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in _TEXT_SUFFIXES and path.is_file()
    ]
    assert len(files) > 200  # the walk found the tree
    cited = [
        f"{path.relative_to(ROOT)}: {mark}"
        for path in files
        for mark in _OUTSIDE_CITATIONS
        if mark in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert cited == []


def test_the_agents_modelfile_is_the_tools_model_the_tests_use() -> None:
    """docs/agents.md's Modelfile makes the model that tests/test_agents_replay.py and
    benchmarks.agents give the agents: the same template (Go's `{{-` eats the whitespace before
    it, so the page may break lines there) and the trained context."""
    text = (DOCS / "agents.md").read_text()
    match = re.search(r"```\n(FROM .*?)```", text, re.S)
    assert match, "docs/agents.md has no Modelfile"
    commands = {c.name: c.args for c in parse_modelfile(match.group(1))}

    def trimmed(template: str) -> str:
        return re.sub(r"\s+\{\{-", "{{-", template)

    assert trimmed(commands["template"]) == trimmed(TOOLS_TEMPLATE)
    assert commands["model"] == DEFAULT_MODEL and commands["num_ctx"] == "8192"
