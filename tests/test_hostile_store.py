"""Models damaged on disk, against the real server (issue 29, item 3): a manifest, a config blob or
a layer of the wrong type, not UTF-8, or gone. Each damaged model is written straight into the
store the server reads, as another program (or a bad disk, or a registry) could leave it.

A damaged model gets Ollama's answer, `{"error": ...}` with the damage named in Go's own words,
from every endpoint that reads it; `/api/tags` lists the others (and leaves a model out exactly
when Ollama's list does: its manifest or config cannot be read); the model can be removed; the
server and its runner are the same process before and after. Text that is not UTF-8 is no
damage to Ollama (Go strings carry any bytes; they reach a client as U+FFFD), nor here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess
from trio_ollama.store import CorruptModelError, Store
from trio_ollama.store.default_model import ensure_default_model
from trio_ollama.store.manifest import Manifest, ManifestError, ModelConfig

pytestmark = pytest.mark.slow

MODEL = "smollm2:135m"
MEDIA = "application/vnd.ollama.image."
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    models = tmp_path_factory.mktemp("hostile-store") / "models"
    ensure_default_model(Store(models))
    return models


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(models, {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_CONTEXT_LENGTH": "1024"})
    try:
        # The model loaded once: a damaged model must leave this runner as it is.
        r = httpx.post(proc.url + "/api/generate", json={"model": MODEL}, timeout=60)
        assert r.status_code == 200, r.text
        yield proc
    finally:
        proc.stop()


# ----- writing a damaged model, as another program could


def manifest_path(models: Path, name: str) -> Path:
    model, _, tag = name.partition(":")
    return models / "manifests" / "registry.ollama.ai" / "library" / model / (tag or "latest")


def put_blob(models: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (models / "blobs" / digest.replace(":", "-")).write_bytes(data)
    return digest


def gone(kind: str) -> str:
    """The digest of a blob that is not in the store: as if it had been deleted."""
    return "sha256:" + hashlib.sha256(f"deleted {kind} blob".encode()).hexdigest()


def base_manifest(models: Path) -> dict[str, Any]:
    return dict(json.loads(manifest_path(models, MODEL).read_bytes()))


def base_config(models: Path) -> dict[str, Any]:
    digest = base_manifest(models)["config"]["digest"]
    return dict(json.loads((models / "blobs" / digest.replace(":", "-")).read_bytes()))


Damage = bytes | tuple[str, bytes | None]


def write_model(models: Path, name: str, damage: Damage) -> None:
    """Model `name`: the default model with one thing replaced. `damage` is raw manifest bytes,
    or (kind, content): the config or the layer of that kind holds `content`, None for a blob
    that is gone."""
    path = manifest_path(models, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(damage, bytes):
        path.write_bytes(damage)
        return
    kind, content = damage
    digest = gone(kind) if content is None else put_blob(models, content)
    manifest = base_manifest(models)
    if kind == "config":
        manifest["config"] = {"mediaType": CONFIG_MEDIA, "digest": digest, "size": 1}
    else:
        layers = [x for x in manifest["layers"] if x["mediaType"] != MEDIA + kind]
        manifest["layers"] = [*layers, {"mediaType": MEDIA + kind, "digest": digest, "size": 1}]
    path.write_bytes(json.dumps(manifest).encode())


def config_with(models: Path, **fields: Any) -> tuple[str, bytes]:
    return "config", json.dumps({**base_config(models), **fields}).encode()


# ----- talking to the server


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=120)


def tags(server: ServerProcess) -> list[str]:
    r = httpx.get(server.url + "/api/tags", timeout=30)
    assert r.status_code == 200, r.text
    return [m["name"] for m in r.json()["models"]]


def uses(name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every request that reads model `name` whole: show, generate and chat, streamed or not."""
    user = [{"role": "user", "content": "hi"}]
    return [
        ("/api/show", {"model": name}),
        ("/api/generate", {"model": name, "prompt": "hi", "stream": False}),
        ("/api/generate", {"model": name, "prompt": "hi"}),
        ("/api/chat", {"model": name, "messages": user, "stream": False}),
        ("/api/chat", {"model": name, "messages": user}),
    ]


def corrupt(name: str, detail: str) -> str:
    return f"model is corrupt: {name}:latest: {detail}; remove it with `trio-ollama rm`"


def check_refused(
    server: ServerProcess, name: str, status: int, error: str, *, listed: bool, copied: bool
) -> None:
    """Every use of `name` answers `status` and `error` (a prefix when it ends with '...');
    the listing still has the good model; copy and delete answer; nothing died."""
    runners = server.runners()
    names = tags(server)
    assert MODEL in names
    assert (f"{name}:latest" in names) == listed, names
    for path, body in uses(name):
        r = post(server, path, body)
        assert r.status_code == status, (path, body, r.text)
        got = r.json()
        assert set(got) == {"error"}, got
        if error.endswith("..."):
            assert got["error"].startswith(error[:-3]), got
        else:
            assert got["error"] == error, (path, body)
    r = post(server, "/api/copy", {"source": name, "destination": f"{name}-copy"})
    if copied:
        # As Ollama's copy: the manifest, byte for byte; the copy is as damaged as the model.
        assert r.status_code == 200, r.text
        shown = post(server, "/api/show", {"model": f"{name}-copy"})
        assert shown.status_code == status
        r = httpx.request("DELETE", server.url + "/api/delete", json={"model": f"{name}-copy"})
        assert r.status_code == 200, r.text
    else:
        assert (r.status_code, r.json()) == (status, {"error": error})
    r = httpx.get(server.url + "/api/ps", timeout=30)
    assert r.status_code == 200 and len(r.json()["models"]) == 1, r.text
    # A damaged model can always be removed, and is then gone.
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=30)
    assert r.status_code == 200, r.text
    r = post(server, "/api/show", {"model": name})
    assert (r.status_code, r.json()) == (404, {"error": f"model '{name}' not found"})
    assert server.proc.poll() is None, "the server died"
    assert server.runners() == runners, "the runner died or was replaced"
    assert post(server, "/api/show", {"model": MODEL}).status_code == 200


# ----- the cases


# A field of the config blob of the wrong type: Ollama's list leaves the model out (it cannot
# decode the config), and every use answers Go's text.
CONFIG_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("model_families", {"model_families": 5},
     "json: cannot unmarshal number into Go struct field ConfigV2.model_families of type "
     "[]string"),
    ("model_families-item", {"model_families": ["llama", 7]},
     "json: cannot unmarshal number into Go struct field ConfigV2.model_families of type "
     "string"),
    ("rootfs", {"rootfs": "x"},
     "json: cannot unmarshal string into Go struct field ConfigV2.rootfs of type model.RootFS"),
    ("rootfs-diff_ids", {"rootfs": {"type": "layers", "diff_ids": {}}},
     "json: cannot unmarshal object into Go struct field RootFS.rootfs.diff_ids of type "
     "[]string"),
    ("context_length", {"context_length": "abc"},
     "json: cannot unmarshal string into Go struct field ConfigV2.context_length of type int"),
    ("context_length-fraction", {"context_length": 1.5},
     "json: cannot unmarshal number 1.5 into Go struct field ConfigV2.context_length of type "
     "int"),
    ("model_family", {"model_family": ["llama"]},
     "json: cannot unmarshal array into Go struct field ConfigV2.model_family of type string"),
    ("file_type", {"file_type": True},
     "json: cannot unmarshal bool into Go struct field ConfigV2.file_type of type string"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "go_error"), [c[1:] for c in CONFIG_FIELDS], ids=[c[0] for c in CONFIG_FIELDS]
)
def test_a_config_field_of_the_wrong_type(
    server: ServerProcess, models: Path, request: pytest.FixtureRequest,
    fields: dict[str, Any], go_error: str,
) -> None:  # fmt: skip
    name = "config-" + request.node.callspec.id
    write_model(models, name, config_with(models, **fields))
    check_refused(server, name, 400, corrupt(name, f"config: {go_error}"), listed=False,
                  copied=True)  # fmt: skip


def test_a_config_that_is_not_an_object(server: ServerProcess, models: Path) -> None:
    write_model(models, "config-array", ("config", b"[1, 2]"))
    error = "config: json: cannot unmarshal array into Go value of type model.ConfigV2"
    check_refused(server, "config-array", 400, corrupt("config-array", error), listed=False,
                  copied=True)  # fmt: skip


def test_a_config_that_is_not_json(server: ServerProcess, models: Path) -> None:
    write_model(models, "config-garbage", ("config", b"\x00\xff{"))
    error = corrupt("config-garbage", "config: invalid JSON: ").split(";")[0] + "..."
    check_refused(server, "config-garbage", 400, error, listed=False, copied=True)


# A manifest of the wrong shape: refused when read, by copy too (nothing to copy but damage).
def manifest_cases(models: Path) -> list[tuple[str, bytes, str]]:
    base = base_manifest(models)
    layer = base["layers"][0]
    return [
        ("layers", json.dumps({**base, "layers": 5}).encode(),
         "manifest: json: cannot unmarshal number into Go struct field Manifest.layers of type "
         "[]manifest.Layer"),
        ("size", json.dumps({**base, "layers": [{**layer, "size": "1"}]}).encode(),
         "manifest: json: cannot unmarshal string into Go struct field Layer.layers.size of "
         "type int64"),
        ("digest", json.dumps({**base, "layers": [{**layer, "digest": "../../etc"}]}).encode(),
         f"layer {layer['mediaType']}: invalid digest format"),
        ("config", json.dumps({**base, "config": ["x"]}).encode(),
         "manifest: json: cannot unmarshal array into Go struct field Manifest.config of type "
         "manifest.Layer"),
        ("schema", json.dumps({**base, "schemaVersion": "2"}).encode(),
         "manifest: json: cannot unmarshal string into Go struct field Manifest.schemaVersion of "
         "type int"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(5), ids=["layers", "size", "digest", "config", "schema"])
def test_a_manifest_of_the_wrong_shape(server: ServerProcess, models: Path, case: int) -> None:
    key, raw, detail = manifest_cases(models)[case]
    name = f"manifest-{key}"
    write_model(models, name, raw)
    check_refused(server, name, 400, corrupt(name, detail), listed=False, copied=False)


# A layer of the wrong type: the model is listed (Ollama's list reads no layer), every use
# answers what is wrong with it.
WRONG_LAYERS: list[tuple[str, bytes, int, str]] = [
    ("params-array", b"[1, 2]", 400,
     "params layer: json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("params-string", b'"temperature 0"', 400,
     "params layer: json: cannot unmarshal string into Go value of type "
     "map[string]interface {}"),
    ("messages-object", b'{"role": "user", "content": "hi"}', 400,
     "messages layer: json: cannot unmarshal object into Go value of type []api.Message"),
    ("messages-role", b'[{"role": 5, "content": "hi"}]', 400,
     "messages layer: json: cannot unmarshal number into Go struct field Message.role of type "
     "string"),
    ("messages-item", b'["hi"]', 400,
     "messages layer: json: cannot unmarshal string into Go value of type api.Message"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "status", "detail"), [c[1:] for c in WRONG_LAYERS], ids=[c[0] for c in WRONG_LAYERS]
)
def test_a_layer_of_the_wrong_type(
    server: ServerProcess, models: Path, request: pytest.FixtureRequest,
    content: bytes, status: int, detail: str,
) -> None:  # fmt: skip
    name = "layer-" + request.node.callspec.id
    kind = name.split("-")[1]
    write_model(models, name, (kind, content))
    check_refused(server, name, status, corrupt(name, detail), listed=True, copied=True)


@pytest.mark.parametrize("kind", ["params", "messages"])
def test_a_json_layer_that_is_not_json(server: ServerProcess, models: Path, kind: str) -> None:
    name = f"{kind}-garbage"
    write_model(models, name, (kind, b"{\x00"))
    error = corrupt(name, f"{kind} layer: invalid JSON: ").split(";")[0] + "..."
    check_refused(server, name, 400, error, listed=True, copied=True)


def test_a_template_that_does_not_parse(server: ServerProcess, models: Path) -> None:
    # A template Go cannot parse: Ollama cannot read the model either.
    write_model(models, "template-broken", ("template", b"{{ .Prompt "))
    error = "template error: template: :1: unclosed action"
    check_refused(server, "template-broken", 400, error, listed=True, copied=True)


# A blob that is gone, of each layer kind: the one answer "model is corrupt", naming it.
KINDS = ["config", "model", "adapter", "projector", "template", "system", "params", "messages",
         "license"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a_deleted_blob(server: ServerProcess, models: Path, kind: str) -> None:
    name = f"deleted-{kind}"
    write_model(models, name, (kind, None))
    what = "config" if kind == "config" else f"{kind} layer"
    error = corrupt(name, f'{what}: blob "{gone(kind)}" not found')
    # Ollama's list leaves out a model whose config it cannot open, and reads no other layer.
    check_refused(server, name, 400, error, listed=kind != "config", copied=True)


# Text that is not UTF-8: Ollama holds it as Go strings, and a client reads U+FFFD for each
# bad byte. The model works.
NOT_UTF8: list[tuple[str, bytes, str, Any]] = [
    ("system", b"be \xff brief", "system", "be \ufffd brief"),
    ("template", b"\xfe{{ .Prompt }}", "template", "\ufffd{{ .Prompt }}"),
    ("license", b"\xa9 2024 someone", "license", "\ufffd 2024 someone"),
    ("params", b'{"stop": ["\xff"], "top_k": 7}', "parameters",
     'stop                           "\ufffd"\ntop_k                          7'),
    ("messages", b'[{"role": "user", "content": "a\xffb"}]', "messages",
     [{"role": "user", "content": "a\ufffdb"}]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "content", "field", "shown"), NOT_UTF8, ids=[c[0] for c in NOT_UTF8]
)
def test_text_that_is_not_utf8_reads_as_ollama_reads_it(
    server: ServerProcess, models: Path, kind: str, content: bytes, field: str, shown: Any
) -> None:
    name = f"utf8-{kind}"
    write_model(models, name, (kind, content))
    assert f"{name}:latest" in tags(server)
    r = post(server, "/api/show", {"model": name})
    assert r.status_code == 200, r.text
    assert r.json()[field] == shown
    # What the model is prompted with carries the same text (rendered, not run).
    for path, body in [
        ("/api/generate", {"model": name, "prompt": "hi", "stream": False}),
        ("/api/chat", {"model": name, "messages": [{"role": "user", "content": "hi"}],
                       "stream": False}),
    ]:  # fmt: skip
        r = post(server, path, {**body, "_debug_render_only": True})
        assert r.status_code == 200, r.text
        rendered = r.json()["_debug_info"]["rendered_template"]
        if kind in ("system", "template", "messages"):
            assert "\ufffd" in rendered, rendered
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": name}, timeout=30)
    assert r.status_code == 200
    assert server.proc.poll() is None


def test_a_model_damaged_while_loaded(server: ServerProcess, models: Path) -> None:
    """A model that runs, then loses its system blob: it is still listed as running (`/api/ps`
    reads no store), each new request is refused, and it can be removed."""
    system = b"You answer in one word. " + str(id(server)).encode()
    write_model(models, "loaded", ("system", system))
    r = post(server, "/api/generate", {"model": "loaded", "prompt": "hi", "stream": False,
                                       "options": {"num_predict": 1}})  # fmt: skip
    assert r.status_code == 200, r.text
    runners = server.runners()
    running = httpx.get(server.url + "/api/ps", timeout=30).json()
    digest = "sha256-" + hashlib.sha256(system).hexdigest()
    (models / "blobs" / digest).unlink()
    r = httpx.get(server.url + "/api/ps", timeout=30)
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == [m["name"] for m in running["models"]]
    error = corrupt("loaded", f'system layer: blob "{digest.replace("-", ":", 1)}" not found')
    for path, body in uses("loaded"):
        r = post(server, path, body)
        assert (r.status_code, r.json()) == (400, {"error": error}), (path, body)
    r = httpx.request("DELETE", server.url + "/api/delete", json={"model": "loaded"}, timeout=30)
    assert r.status_code == 200
    assert MODEL in tags(server)
    assert server.proc.poll() is None and server.runners() == runners


# ----- the same checks without a server


def test_store_list_leaves_out_what_ollama_leaves_out(models: Path) -> None:
    store = Store(models)
    write_model(models, "unit-config", config_with(models, model_families=5))
    write_model(models, "unit-system", ("system", None))
    try:
        names = [e.name.display_shortest for e in store.list()]
        assert MODEL in names and "unit-system:latest" in names
        assert "unit-config:latest" not in names
        with pytest.raises(CorruptModelError, match=r"^unit-system:latest: system layer: blob "):
            store.show("unit-system")
    finally:
        store.delete("unit-config")
        store.delete("unit-system")


@pytest.mark.parametrize(
    ("raw", "error"),
    [(b'{"config": {}, "layers": 5}', "json: cannot unmarshal number into Go struct field "
      "Manifest.layers of type []manifest.Layer"),
     (b'{"config": {"digest": 5}}', "json: cannot unmarshal number into Go struct field "
      "Layer.config.digest of type string"),
     (b'{"config": {}, "layers": [{"digest": "sha256:x"}]}', "invalid digest format"),
     (b"[" * 100_000, "invalid JSON: exceeded max depth of 256"),
     (b'{"config": {}, "schemaVersion": ' + b"9" * 5000 + b"}", "invalid JSON: ")],
    ids=["layers", "digest-type", "digest", "deep", "huge-number"],
)  # fmt: skip
def test_a_manifest_of_any_shape_is_one_error(raw: bytes, error: str) -> None:
    # Each of these escaped as a Python error (TypeError, RecursionError, ValueError) or was
    # taken as it came (a digest that is no file name).
    with pytest.raises(ManifestError) as caught:
        Manifest.from_bytes(raw)
    assert error in str(caught.value)


def test_config_reads_the_wrong_type_as_go_does() -> None:
    with pytest.raises(ManifestError) as caught:
        ModelConfig.from_bytes(b'{"model_families": "llama"}')
    assert str(caught.value) == (
        "config: json: cannot unmarshal string into Go struct field ConfigV2.model_families of "
        "type []string"
    )


def test_weights_that_are_not_gguf(server: ServerProcess, models: Path) -> None:
    # Refused where the model is read, before anything tries to load it.
    write_model(models, "weights-garbage", ("model", b"PK\x03\x04 not weights"))
    check_refused(server, "weights-garbage", 500, "not a GGUF file (bad magic)", listed=True,
                  copied=True)  # fmt: skip
