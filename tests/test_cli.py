"""The command line against a live server: every verb run as a subprocess (`python -m
trio_ollama ...`) with `OLLAMA_HOST` pointing at a real server on a loopback port, and the
interactive `run` driven through a pseudo-terminal."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect  # type: ignore[import-untyped]
import pytest

from tests.ggufs import write_tiny_gguf
from tests.server import free_port, running_server
from trio_ollama.cli.commands import processor, until
from trio_ollama.cli.formatting import table
from trio_ollama.gocompat.format import human_bytes
from trio_ollama.store import Store
from trio_ollama.store.default_model import GGUF_NAME, GGUF_SHA256, ensure_default_model
from trio_ollama.version import OLLAMA_API_VERSION

# The command line in subprocesses, against a real server.
pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
TINY = "tiny:latest"  # the default model's GGUF, created from a Modelfile with short answers
PIRATE = "You are a pirate."
SEP = "    "
AGO = re.compile(r"^(Less than a second|1 second|\d+ seconds|About a minute|\d+ minutes) ago$")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    root = tmp_path_factory.mktemp("cli") / "models"
    ensure_default_model(Store(root))
    return root


@pytest.fixture(scope="module")
def url(models: Path) -> Iterator[str]:
    with running_server(models) as base:
        yield base


def cli(
    url: str | None, *args: str, input: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m trio_ollama ARGS` as a user would, against the server at `url`."""
    host = url.removeprefix("http://") if url else f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OLLAMA_HOST": host}
    env.pop("OLLAMA_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "trio_ollama", *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """A failure: exit status 1 and exactly one line on stderr, never a traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.rstrip("\n")


@pytest.fixture(scope="module")
def created(url: str, tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> str:
    """`create` from a Modelfile next to a copy of the GGUF; returns its stderr."""
    folder = tmp_path_factory.mktemp("modelfile")
    shutil.copyfile(default_gguf, folder / GGUF_NAME)
    (folder / "Modelfile").write_text(
        f"FROM ./{GGUF_NAME}\n"
        "PARAMETER temperature 0\n"
        "PARAMETER num_predict 8\n"
        "SYSTEM You are a helpful assistant.\n"
        'LICENSE """first line\nsecond line\nthird line"""\n'
    )
    # Run from elsewhere: the GGUF path is relative to the Modelfile, not to the cwd.
    result = cli(url, "create", "tiny", "-f", str(folder / "Modelfile"), cwd=folder.parent)
    assert ok(result) == ""
    return result.stderr


def cells(text: str, header: list[str]) -> list[list[str]]:
    """Split a table at its header's columns, after checking the layout: every cell padded to
    its column's width, columns four spaces apart, and four trailing spaces on each line."""
    lines = text.splitlines()
    starts = [lines[0].index(name) for name in header]
    assert lines[0].split() == header
    assert len({len(line) for line in lines}) == 1, "rows padded to the same width"
    rows = []
    for line in lines:
        assert line.endswith(SEP)
        assert all(line[s - len(SEP) : s] == SEP for s in starts[1:])
        bounds = [*starts, len(line)]
        rows.append([line[a:b].rstrip() for a, b in itertools.pairwise(bounds)])
    assert table(header, rows[1:]) == text
    return rows[1:]


# ----- no server needed


def test_version_without_a_server() -> None:
    # Ollama's `ollama -v` with no server: both lines on stdout, and exit status 0.
    for flag in ("-v", "--version"):
        assert ok(cli(None, flag)) == (
            "Warning: could not connect to a running Ollama instance\n"
            f"Warning: client version is {OLLAMA_API_VERSION}\n"
        )


def test_version_names_the_servers_ollama_version(url: str) -> None:
    # The same version on both sides: Ollama prints no warning.
    assert ok(cli(url, "-v")) == f"ollama version is {OLLAMA_API_VERSION}\n"


def test_server_down_is_one_clear_line() -> None:
    port = free_port()
    for args in (["list"], ["ps"], ["run", MODEL, "hi"], ["show", MODEL], ["rm", "x"]):
        result = subprocess.run(
            [sys.executable, "-m", "trio_ollama", *args],
            env={**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert failed(result) == (
            f"could not connect to trio-ollama server at http://127.0.0.1:{port}; "
            "start it with: trio-ollama serve"
        )
        assert result.stdout == ""


def test_processor_and_until_strings() -> None:
    assert processor(1000, 0) == "100% CPU"
    assert processor(1000, 1000) == "100% GPU"
    assert processor(1000, 250) == "75%/25% CPU/GPU"
    assert processor(0, 5) == processor(10, 20) == "Unknown"
    now = 1_700_000_000.0
    assert until("2023-11-14T22:13:19Z", now=now) == "Stopping..."
    assert until("2318-01-01T00:00:00Z", now=now) == "Forever"
    assert until("2023-11-14T22:17:20+00:00", now=now) == "4 minutes from now"


# ----- create, list, show


def test_create_from_modelfile_with_local_gguf(url: str, created: str) -> None:
    lines = created.splitlines()
    assert lines[0] == "gathering model components"
    assert lines[1] == f"copying file sha256:{GGUF_SHA256} 100% 98 MB"
    assert "using autodetected template chatml" in lines
    assert lines[-2:] == ["writing manifest", "success"]
    assert "\x1b" not in created, "no spinner when stderr is not a terminal"
    # The blob was already in the store: the second upload is skipped, the create still works.
    shown = httpx.post(url + "/api/show", json={"model": "tiny"}).json()
    assert shown["system"] == "You are a helpful assistant."


def test_create_uploads_a_missing_blob_and_rm_removes_models(url: str, tmp_path: Path) -> None:
    gguf = write_tiny_gguf(tmp_path / "synthetic.gguf")
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 404
    (tmp_path / "Modelfile").write_text("FROM synthetic.gguf\n")
    result = cli(url, "create", "synthetic", cwd=tmp_path)  # -f defaults to ./Modelfile
    assert ok(result) == ""
    size = human_bytes(gguf.stat().st_size)
    assert f"copying file {digest} 100% {size}" in result.stderr.splitlines()
    assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 200
    ok(cli(url, "cp", "synthetic", "synthetic:two"))
    out = ok(cli(url, "rm", "synthetic", "synthetic:two"))
    assert out == "deleted 'synthetic'\ndeleted 'synthetic:two'\n"
    assert "synthetic" not in ok(cli(url, "list"))


def test_create_errors(url: str, tmp_path: Path) -> None:
    assert failed(cli(url, "create", "x", "-f", str(tmp_path / "nope"))) == (
        f"Error: open {tmp_path / 'nope'}: no such file or directory"
    )
    (tmp_path / "Modelfile").write_text("FROMM base\n")
    assert failed(cli(url, "create", "x", cwd=tmp_path)) == (
        'Error: (line 1): command must be one of "from", "license", "template", "system", '
        '"adapter", "renderer", "parser", "parameter", or "message"'
    )
    (tmp_path / "Modelfile").write_text(f"FROM {MODEL}\nPARAMETER nonsense 1\n")
    assert failed(cli(url, "create", "x", cwd=tmp_path)) == "Error: unknown parameter 'nonsense'"


def test_list_table(url: str, created: str) -> None:
    out = ok(cli(url, "list"))
    rows = cells(out, ["NAME", "ID", "SIZE", "MODIFIED"])
    tags = {m["name"]: m for m in httpx.get(url + "/api/tags").json()["models"]}
    assert [r[0] for r in rows] == list(tags)  # the server's order: newest first
    assert {TINY, MODEL} <= set(tags)
    for name, digest, size, modified in rows:
        assert digest == tags[name]["digest"][:12]
        assert size == human_bytes(tags[name]["size"]) == "98 MB"
        assert AGO.match(modified), modified
    assert ok(cli(url, "ls", "SMOL")).splitlines()[1].startswith(MODEL + SEP)  # case-insensitive
    assert len(ok(cli(url, "ls", "tiny")).splitlines()) == 2
    assert ok(cli(url, "ls", "nothing-like-this")) == "NAME    ID    SIZE    MODIFIED    \n"


def test_show_sections(url: str, created: str) -> None:
    out = ok(cli(url, "show", "tiny"))
    assert out == (
        "  Model\n"
        "    architecture        llama      \n"
        "    parameters          134.52M    \n"
        "    context length      8192       \n"
        "    embedding length    576        \n"
        "    quantization        Q4_1       \n"
        "\n"
        "  Capabilities\n"
        "    completion    \n"
        "\n"
        "  Parameters\n"
        "    num_predict    8                 \n"
        '    stop           "<|im_start|>"    \n'
        '    stop           "<|im_end|>"      \n'
        "    temperature    0                 \n"
        "\n"
        "  System\n"
        "    You are a helpful assistant.    \n"
        "\n"
        "  License\n"
        "    first line     \n"
        "    second line    \n"
        "    ...            \n"
        "\n"
    )
    assert ok(cli(url, "show", "tiny", "--system")) == "You are a helpful assistant."
    assert ok(cli(url, "show", "tiny", "--license")) == "first line\nsecond line\nthird line\n"
    assert ok(cli(url, "show", "tiny", "--template")).startswith("{{- range .Messages }}")
    params = ok(cli(url, "show", "tiny", "--parameters")).splitlines()
    assert "num_predict                    8" in params
    modelfile = ok(cli(url, "show", "tiny", "--modelfile"))
    assert modelfile.startswith('# Modelfile generated by "ollama show"\n')
    assert "PARAMETER num_predict 8\n" in modelfile
    verbose = ok(cli(url, "show", MODEL, "-v"))
    assert "\n  Metadata\n" in verbose and "\n  Tensors\n" in verbose
    assert re.search(r"\n    general\.architecture +llama +\n", verbose)
    assert re.search(r"\n    tokenizer\.ggml\.tokens +\[\S+ \.\.\.\+\d+ more\] +\n", verbose)
    assert failed(cli(url, "show", "tiny", "--system", "--license")) == (
        "Error: only one of '--license', '--modelfile', '--parameters', '--system', or "
        "'--template' can be specified"
    )


def test_unknown_model(url: str) -> None:
    assert failed(cli(url, "show", "nosuch")) == "Error: model 'nosuch' not found"
    assert failed(cli(url, "stop", "nosuch")) == 'Error: couldn\'t find model "nosuch" to stop'
    assert failed(cli(url, "rm", "nosuch")) == "Error: model 'nosuch' not found"
    assert failed(cli(url, "cp", "nosuch", "other")) == 'Error: model "nosuch" not found'
    # `run` pulls a missing model first, and says why that failed (a registry on loopback that
    # is not there: tests never reach for registry.ollama.ai).
    nowhere = f"127.0.0.1:{free_port()}/library/nosuch"
    result = cli(url, "run", nowhere, "hi")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: pull model manifest: ")


def test_pull_and_push_report_registry_failures(url: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}/some/model"
    result = cli(url, "pull", nowhere, "--insecure")
    assert result.returncode == 1 and result.stdout == ""
    status, error = result.stderr.splitlines()
    assert status == "pulling manifest" and error.startswith("Error: pull model manifest: ")
    result = cli(url, "push", nowhere, "--insecure")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "retrieving manifest",
        "couldn't retrieve manifest",
        f"Error: model '{nowhere}:latest' not found",
    ]


def test_cp_and_rm(url: str, created: str) -> None:
    assert ok(cli(url, "cp", "tiny", "tiny-copy:v1")) == "copied 'tiny' to 'tiny-copy:v1'\n"
    rows = cells(ok(cli(url, "ls", "tiny-copy")), ["NAME", "ID", "SIZE", "MODIFIED"])
    assert [r[0] for r in rows] == ["tiny-copy:v1"]
    out = ok(cli(url, "rm", "tiny-copy:v1"))
    assert out == "deleted 'tiny-copy:v1'\n"
    assert "tiny-copy" not in ok(cli(url, "list"))


# ----- run, ps, stop


def test_run_with_a_prompt_then_ps_and_stop(url: str, created: str) -> None:
    result = cli(url, "run", "tiny", "What is the capital of France?", "--verbose",
                 "--keepalive=-1m")  # fmt: skip
    out = ok(result)
    assert "Paris" in out and out.endswith("\n\n")
    labels = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert labels == [
        "total duration", "load duration", "prompt eval count", "prompt eval duration",
        "prompt eval rate", "eval count", "eval duration", "eval rate",
    ]  # fmt: skip
    assert re.search(r"^prompt eval count:    \d+ token\(s\)$", result.stderr, re.M)
    assert re.search(r"^prompt eval rate:     \d+\.\d\d tokens/s$", result.stderr, re.M)
    assert re.search(r"^eval count:           \d+ token\(s\)$", result.stderr, re.M)
    assert re.search(r"^eval rate:            \d+\.\d\d tokens/s$", result.stderr, re.M)
    assert re.search(r"^total duration:       [\d.]+(ms|s|µs)$", result.stderr, re.M)

    header = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "RUNNING", "WAITING", "SLOTS", "UNTIL"]
    running = httpx.get(url + "/api/ps").json()["models"]
    rows = cells(ok(cli(url, "ps")), header)
    assert len(rows) == len(running) == 1
    [(name, digest, size, proc, context, now, queued, slots, until_)] = rows
    assert (now, queued, slots) == ("0", "0", "1")
    [entry] = running
    assert (name, digest) == (entry["name"], entry["digest"][:12])
    assert size == human_bytes(entry["size"])
    assert proc == processor(entry["size"], entry["size_vram"]) == "100% CPU"
    assert context == str(entry["context_length"]) == "4096"
    assert until_ == "Forever"  # --keepalive -1m

    assert ok(cli(url, "stop", "tiny")) == ""
    out = ok(cli(url, "ps"))
    # Once nothing runs there are no queue fields to show: Ollama's header alone.
    rows = cells(out, header if "RUNNING" in out else [*header[:5], "UNTIL"])
    assert all(row[-1] == "Stopping..." for row in rows), rows


def test_run_with_stdin(url: str, created: str) -> None:
    # stdin comes first, then the prompt words, joined by a space.
    out = ok(cli(url, "run", "tiny", "France?", "--nowordwrap", input="What is the capital of"))
    assert "Paris" in out


def test_run_with_format_json(url: str, created: str) -> None:
    out = ok(cli(url, "run", "tiny", "--format", "json", "Describe Paris as JSON."))
    assert out.lstrip().startswith("{")
    assert failed(cli(url, "run", "tiny", "--format", "yaml", "hi")) == (
        'Error: invalid format "yaml": use json or a JSON schema object'
    )
    assert failed(cli(url, "run", "tiny", "--keepalive", "10", "hi")) == (
        'Error: time: missing unit in duration "10"'
    )


# ----- interactive run through a pseudo-terminal


def spawn(url: str, *args: str, columns: int = 200) -> pexpect.spawn:
    env = {**os.environ, "OLLAMA_HOST": url.removeprefix("http://"), "TERM": "dumb"}
    env.pop("OLLAMA_DEBUG", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "trio_ollama", *args], env=env, encoding="utf-8", timeout=90,
        dimensions=(40, columns),
    )  # fmt: skip
    child.expect_exact(">>> ")
    return child


def command(child: pexpect.spawn, line: str, reply: str) -> None:
    child.sendline(line)
    child.expect_exact(reply)
    child.expect_exact(">>> ")


def test_interactive_run(url: str) -> None:
    child = spawn(url, "run", MODEL)
    try:
        command(child, "/set parameter temperature 0", "Set parameter 'temperature' to '0'")
        command(child, "/set parameter num_predict 12", "Set parameter 'num_predict' to '12'")
        bogus = "Couldn't set parameter: \"unknown parameter 'bogus'\""
        command(child, "/set parameter bogus 1", bogus)
        command(child, "/show info", "quantization        Q4_1")

        # A multi-line prompt, and its answer streamed back.
        child.sendline('"""What is the capital')
        child.expect_exact("... ")
        child.sendline('of France?"""')
        child.expect_exact('France?"""\r\n')
        child.expect_exact("Paris")
        child.expect_exact(">>> ")

        command(child, f"/set system {PIRATE}", "Set system message.")
        command(child, "/clear", "Cleared session context")

        # Ctrl+C mid-answer stops that answer and keeps the session.
        command(child, "/set parameter num_predict 2000", "to '2000'")
        child.sendline("Write a long story about a dragon.")
        child.expect_exact("dragon.\r\n")
        child.expect(r"([A-Za-z]+,? ){6}")  # words, not the spinner's escape codes
        child.sendintr()
        child.expect_exact(">>> ", timeout=20)
        # A finished answer ends with an empty line; this one was cut off mid-sentence.
        assert not child.before.endswith("\r\n\r\n"), child.before

        # The session goes on: the system message is kept and the next prompt is answered.
        command(child, "/show system", PIRATE)
        command(child, "/set parameter num_predict 4", "to '4'")
        child.sendline("Say hello.")
        child.expect_exact("Say hello.\r\n")
        child.expect_exact(">>> ", timeout=60)

        # Ctrl+C at an empty prompt explains how to leave; /bye leaves with status 0.
        child.sendintr()
        child.expect_exact("Use Ctrl + d or /bye to exit.")
        child.expect_exact(">>> ")
        child.sendline("/bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_interactive_answers_wrap_at_word_boundaries(url: str) -> None:
    """On a 40-column terminal a long answer is wrapped (a word taken back and written on the
    next line); after `/set nowordwrap` it is not."""
    wrap_escape = re.compile(r"\x1b\[\d+D\x1b\[K\r\n")
    child = spawn(url, "run", MODEL, columns=40)
    try:
        command(child, "/set parameter temperature 0", "to '0'")
        command(child, "/set parameter num_predict 60", "to '60'")
        child.sendline("Write a long story about a dragon.")
        child.expect_exact("dragon.\r\n")
        child.expect_exact(">>> ")
        assert wrap_escape.search(child.before), child.before
        command(child, "/set nowordwrap", "Set 'nowordwrap' mode.")
        child.sendline("Write a long story about a dragon.")
        child.expect_exact("dragon.\r\n")
        child.expect_exact(">>> ")
        assert not wrap_escape.search(child.before), child.before
    finally:
        child.close()


def test_interactive_ctrl_d_leaves(url: str) -> None:
    child = spawn(url, "run", MODEL)
    try:
        command(child, "/unknown", "Unknown command '/unknown'. Type /? for help")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
