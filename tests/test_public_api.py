"""The library surface a Trio programmer uses without reading the source: `trio_ollama`'s typed
names, the examples of docs/api.md (checked by `mypy --strict`, then run), the runner protocol
the scheduler hands out, a simulator that repeats itself without Trio's private parts, and the
load generator's plots without matplotlib."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trio_ollama
from trio_ollama.cli.main import main as cli_main
from trio_ollama.runner.client import CompletionStream, RunnerClient
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.testing.direct import DirectClient, TimedStream

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trio_ollama"


# ----- the root package


def test_the_root_package_names_a_typed_surface() -> None:
    assert sorted(trio_ollama.__all__) == sorted(set(trio_ollama.__all__))
    missing = [name for name in trio_ollama.__all__ if not hasattr(trio_ollama, name)]
    assert missing == []
    # What a request needs comes from the root, not from the runner's protocol module.
    for name in ("Completion", "Sampling", "Piece", "Done", "Lease", "RunnerConnection"):
        assert name in trio_ollama.__all__
    for name in ("SchedulerError", "ServerBusy", "LoadFailed", "SchedulerClosed", "RunnerError"):
        assert issubclass(getattr(trio_ollama, name), Exception)
    # Functions with their parameters spelled out and typed: no **kwargs to read through.
    for function in (trio_ollama.serve, trio_ollama.open_scheduler, trio_ollama.model_spec):
        signature = inspect.signature(function)
        assert function.__doc__, function
        assert signature.return_annotation is not inspect.Signature.empty, function
        for parameter in signature.parameters.values():
            assert parameter.kind is not parameter.VAR_KEYWORD, (function, parameter)
            assert parameter.annotation is not inspect.Parameter.empty, (function, parameter)
    assert inspect.iscoroutinefunction(trio_ollama.serve)
    assert {"runner_factory", "devices", "cores", "events"} <= set(
        inspect.signature(trio_ollama.open_scheduler).parameters
    )


def test_the_package_says_it_is_typed() -> None:
    """PEP 561: without the marker, mypy treats an installed trio_ollama as untyped."""
    assert (PACKAGE / "py.typed").is_file()


def test_importing_the_package_leaves_the_http_stack_unloaded() -> None:
    code = "import sys, trio_ollama; print(sorted({'quart', 'anycorn'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_the_simulators_runner_is_a_runner_connection_of_its_own() -> None:
    """The direct runner satisfies the protocol the scheduler hands out, rather than
    subclassing the socket client and overriding all of it (mypy checks the protocol; this
    checks that nothing of the socket client is inherited)."""
    assert not issubclass(DirectClient, RunnerClient)
    assert not issubclass(TimedStream, CompletionStream)
    connection = {
        name
        for name, _ in inspect.getmembers(trio_ollama.RunnerConnection)
        if not name.startswith("_")
    }
    assert connection <= set(dir(DirectClient)) | {"ready", "closed"}
    assert connection <= set(dir(RunnerClient)) | {"pid", "ready", "closed"}


# ----- the examples of docs/api.md


def python_blocks(page: str) -> list[tuple[str, str | None]]:
    """Each python example of a page, with the output the page says it prints (a plain block
    after "It prints:"), if any."""
    text = (ROOT / page).read_text()
    found = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        after = text[match.end() :]
        printed = re.match(r"\s*It prints:\s*```\n(.*?)```", after, re.S)
        found.append((match.group(1), printed.group(1) if printed else None))
    return found


API_EXAMPLES = python_blocks("docs/api.md")


def test_the_api_page_has_examples_for_the_server_and_for_the_scheduler() -> None:
    codes = [code for code, _ in API_EXAMPLES]
    assert len(codes) >= 2
    assert any("serve" in code and "smollm2" in code for code in codes)
    assert any("open_scheduler" in code and "MockClock" in code for code in codes)


@pytest.mark.slow  # mypy in a process of its own: about 10 s
def test_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """docs/api.md's examples, and the others' (README, docs/scheduler.md), each in a file of its
    own, through `mypy --strict` with the project's configuration."""
    pages = ["docs/api.md", "docs/scheduler.md", "README.md"]
    files = []
    for page in pages:
        for number, (code, _) in enumerate(python_blocks(page)):
            path = tmp_path / f"{Path(page).stem.lower()}_example_{number}.py"
            path.write_text(code)
            files.append(str(path))
    assert len(files) >= 4
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "mypy-cache"), *files],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no issues found in {len(files)} source files" in result.stdout


def run_example(code: str, tmp_path: Path, env: dict[str, str]) -> str:
    path = tmp_path / "example.py"
    path.write_text(code)
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, **env}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("code", "printed"),
    [
        pytest.param(
            code, printed, marks=[pytest.mark.slow] if "smollm2" in code else [], id=f"example{i}"
        )
        for i, (code, printed) in enumerate(API_EXAMPLES)
    ],
)
def test_the_api_examples_run(code: str, printed: str | None, tmp_path: Path) -> None:
    """Each example as a program of its own, as a reader would run it; where the page shows
    what it prints, it prints that. The ones that ask the real model get a store with it."""
    env = {}
    if "smollm2" in code:
        ensure_default_model(Store(tmp_path / "models"))
        env["OLLAMA_MODELS"] = str(tmp_path / "models")
    out = run_example(code, tmp_path, env)
    if printed is not None:
        assert out == printed
    if "What is the capital of France?" in code:
        assert "Paris" in out


# ----- the simulator, deterministic without Trio's private parts


def test_no_module_reaches_into_trios_private_parts() -> None:
    private = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            private += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.split(".")[0] == "trio" and any(p.startswith("_") for p in name.split("."))
            ]
    assert private == []


CROWDED = textwrap.dedent(
    """
    import hashlib, sys
    from trio_ollama.bench import spec_from
    from trio_ollama.sim import Machine, ModelProfile, simulate

    spec = spec_from({
        "seed": 2, "load": {"concurrency": [3, 4, 5, 6, 7, 8], "requests": 24},
        "workload": {"models": ["a", "b", "c"], "output_tokens": 16,
                     "disconnect": {"queue": 0.1, "after_tokens": 0.1, "after_k": 4}},
    })
    machine = Machine(
        env={"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_MAX_LOADED_MODELS": "2"},
        default=ModelProfile(batch_slowdown=0.5, prompt_per_second=500, load_seconds=0.5),
    )
    outcomes = [
        (o.index, o.model, o.status, o.ttft, tuple(o.gaps), o.e2e, o.output_tokens,
         o.disconnected, o.error)
        for step in simulate(spec, machine) for o in sorted(step.outcomes, key=lambda o: o.index)
    ]
    print(len(outcomes), hashlib.sha256(repr(outcomes).encode()).hexdigest())
    """
)


@pytest.mark.slow  # three processes
def test_a_simulation_repeats_in_every_process() -> None:
    """A sweep of closed loops that overload two slots a model and churn three models through
    two places: many things happen at one virtual moment, where Trio runs the ready tasks in an
    order it draws at random in each process. The result is the same in every process all
    the same: the simulation orders those moments itself (`trio_ollama.testing.turns`).
    Without the turns, five processes gave five different results."""
    command = [sys.executable, "-c", CROWDED]
    runs = {
        subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        for _ in range(3)
    }
    assert len(runs) == 1, runs
    [out] = runs
    count, digest = out.split()
    assert count == "144" and len(digest) == 64
    namespace: dict[str, object] = {}
    exec(compile(CROWDED.replace("print(", "result = ("), "crowded", "exec"), namespace)
    assert namespace["result"] == (144, digest)  # and in this one, under pytest


# ----- the load generator's plots, without matplotlib


def test_plots_without_matplotlib_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--plots` where matplotlib is not installed: the result file is written, then an
    error that says what to install, and no traceback; the same for `bench compare`."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    out = tmp_path / "result.json"
    plots = tmp_path / "plots"
    code = cli_main(["simulate", "--requests", "2", "--out", str(out), "--plots", str(plots)])
    err = capsys.readouterr().err
    assert code == 1
    assert "--plots needs matplotlib" in err and "pip install matplotlib" in err
    assert f"bench compare {out} --plots {plots}" in err
    assert "Traceback" not in err
    assert json.loads(out.read_text())["steps"][0]["summary"]["requests"] == 2
    assert cli_main(["bench", "compare", str(out), "--plots", str(plots)]) == 1
    err = capsys.readouterr().err
    assert "pip install matplotlib" in err and "Traceback" not in err
    assert not plots.exists() or not any(plots.iterdir())
