"""The model store on the real SmolLM2 file: Ollama's exact layout, round trips, crash safety."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ggufs import variant_of, write_tiny_gguf
from trio_ollama.names import ModelName
from trio_ollama.store import (
    CreateError,
    CreateRequest,
    DigestMismatchError,
    Message,
    ModelNotFoundError,
    Store,
)
from trio_ollama.store.modelfile import parse_modelfile, to_create_request

SMOL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_SIZE = 98_362_432
ROOT = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_consistent(store: Store) -> None:
    """Every manifest parses and every blob it names exists with the right digest and size."""
    for path in store.layout.iter_manifest_paths():
        if not ModelName(*path.relative_to(store.layout.manifests).parts).is_valid:
            continue
        manifest = json.loads(path.read_bytes())
        for layer in [manifest["config"], *manifest["layers"]]:
            blob = store.blob_path(layer["digest"])
            assert blob.is_file(), f"{path} names missing blob {layer['digest']}"
            assert blob.stat().st_size == layer["size"]
            assert "sha256:" + sha(blob) == layer["digest"]


def create_from_modelfile(store: Store, name: str, text: str, base: Path) -> None:
    request = to_create_request(parse_modelfile(text), base, store.import_file)
    store.create(name, request)


@pytest.fixture(scope="session")
def smol_once(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Path:
    """A store holding the real model, created once (importing 100 MB hashes it)."""
    store = Store(tmp_path_factory.mktemp("smol") / "models")
    create_from_modelfile(store, "smollm2:135m", f"FROM {default_gguf}", default_gguf.parent)
    return store.root


@pytest.fixture
def smol(store: Store, smol_once: Path) -> Store:
    """The test's own copy of `smol_once` (its files' times the copy's, as if created now; its
    manifest names the first store's weights as where they came `from`)."""
    shutil.copytree(smol_once, store.root, copy_function=shutil.copy)
    return Store(store.root)


def test_create_writes_exactly_ollamas_paths_and_json(store: Store, default_gguf: Path) -> None:
    create_from_modelfile(store, "smollm2:135m", f"FROM {default_gguf}", default_gguf.parent)
    smol = store
    root = smol.root
    manifest_path = root / "manifests/registry.ollama.ai/library/smollm2/135m"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    # The GGUF's Jinja template is ChatML: Ollama adds its built-in chatml template and stops.
    template = (
        b"{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        b"<|im_start|>assistant\n"
    )
    params = b'{"stop":["\\u003c|im_start|\\u003e","\\u003c|im_end|\\u003e"]}\n'
    template_sha = hashlib.sha256(template).hexdigest()
    params_sha = hashlib.sha256(params).hexdigest()
    config_bytes = (
        b'{"model_format":"gguf","model_family":"llama","model_families":["llama"],'
        b'"model_type":"134.52M","file_type":"Q4_1","architecture":"amd64","os":"linux",'
        b'"rootfs":{"type":"layers","diff_ids":["sha256:' + SMOL_SHA.encode() + b'",'
        b'"sha256:' + template_sha.encode() + b'","sha256:' + params_sha.encode() + b'"]}}\n'
    )
    config_sha = hashlib.sha256(config_bytes).hexdigest()
    assert files == sorted(
        [
            ".trio-ollama.lock",
            f"blobs/sha256-{SMOL_SHA}",
            f"blobs/sha256-{template_sha}",
            f"blobs/sha256-{params_sha}",
            f"blobs/sha256-{config_sha}",
            "manifests/registry.ollama.ai/library/smollm2/135m",
        ]
    )
    assert (root / f"blobs/sha256-{template_sha}").read_bytes() == template
    assert (root / f"blobs/sha256-{params_sha}").read_bytes() == params
    assert (root / f"blobs/sha256-{config_sha}").read_bytes() == config_bytes
    expected_manifest = (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        '"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
        f'"digest":"sha256:{config_sha}","size":{len(config_bytes)}}},'
        '"layers":[{"mediaType":"application/vnd.ollama.image.model",'
        f'"digest":"sha256:{SMOL_SHA}","size":{SMOL_SIZE},'
        f'"from":"{root}/blobs/sha256-{SMOL_SHA}"}},'
        '{"mediaType":"application/vnd.ollama.image.template",'
        f'"digest":"sha256:{template_sha}","size":{len(template)}}},'
        '{"mediaType":"application/vnd.ollama.image.params",'
        f'"digest":"sha256:{params_sha}","size":{len(params)}}}]}}\n'
    )
    assert manifest_path.read_text() == expected_manifest
    for path in root.rglob("*"):
        if path.is_file() and path.name != ".trio-ollama.lock":
            assert path.stat().st_mode & 0o777 == 0o644
    check_consistent(smol)


def test_round_trip_create_list_show_copy_delete(smol: Store, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(
        "FROM smollm2:135m\nPARAMETER temperature 0.2\nPARAMETER stop <|im_end|>\n"
        'SYSTEM "Be brief."\nTEMPLATE {{ .Prompt }}\nMESSAGE user hi\nMESSAGE assistant hello\n'
        "LICENSE apache-2.0\n"
    )
    create_from_modelfile(smol, "brief", (tmp_path / "Modelfile").read_text(), tmp_path)
    entries = smol.list()
    assert [e.name.display_shortest for e in entries] == ["brief:latest", "smollm2:135m"]
    for entry in entries:
        manifest_path = smol.layout.manifest_path(entry.name)
        assert entry.digest == sha(manifest_path)
        manifest = json.loads(manifest_path.read_bytes())
        assert entry.size == manifest["config"]["size"] + sum(x["size"] for x in manifest["layers"])
        assert entry.config.details() == {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "134.52M",
            "quantization_level": "Q4_1",
        }

    shown = smol.show("brief")
    assert shown.system == "Be brief."
    assert shown.template == "{{ .Prompt }}"
    assert shown.parameters == {"stop": ["<|im_end|>"], "temperature": 0.2}
    assert shown.messages == (Message("user", "hi"), Message("assistant", "hello"))
    assert shown.license == ("apache-2.0",)
    assert shown.model_path == smol.blob_path("sha256:" + SMOL_SHA)
    assert shown.gguf is not None and shown.gguf.block_count == 30
    modelfile = shown.modelfile()
    assert modelfile.startswith('# Modelfile generated by "ollama show"\n')
    assert "# FROM brief:latest\n\n" in modelfile
    assert f"FROM {shown.model_path}\n" in modelfile
    assert "PARAMETER stop <|im_end|>\n" in modelfile and "SYSTEM Be brief.\n" in modelfile

    smol.copy("brief", "other/copy:v1")
    src = smol.layout.manifest_path(smol.resolve("brief"))
    dst = smol.root / "manifests/registry.ollama.ai/other/copy/v1"
    assert dst.read_bytes() == src.read_bytes()

    blobs_before = set(smol.layout.blobs.iterdir())
    smol.delete("brief")
    assert set(smol.layout.blobs.iterdir()) == blobs_before, "the copy still uses every blob"
    smol.delete("other/copy:v1")
    remaining = {p.name for p in smol.layout.blobs.iterdir()}
    assert f"sha256-{SMOL_SHA}" in remaining, "smollm2 still uses the weights"
    assert len(remaining) == 4, "weights, template, params and config of smollm2"
    assert not (smol.root / "manifests/registry.ollama.ai/other").exists()
    assert [e.name.display_shortest for e in smol.list()] == ["smollm2:135m"]
    check_consistent(smol)
    smol.delete("smollm2:135m")
    assert list(smol.layout.blobs.iterdir()) == []
    assert smol.list() == []


def test_parameters_merge_with_the_base_model(smol: Store) -> None:
    smol.create("a", CreateRequest(from_="smollm2:135m", parameters={"top_k": 5, "seed": 1}))
    smol.create("b", CreateRequest(from_="a", parameters={"seed": 2, "stop": ["x"]}))
    assert smol.show("b").parameters == {"seed": 2, "stop": ["x"], "top_k": 5}
    params_layers = smol.show("b").manifest.layers_of("application/vnd.ollama.image.params")
    assert len(params_layers) == 1
    assert smol.read_blob(params_layers[0].digest) == b'{"seed":2,"stop":["x"],"top_k":5}\n'


def test_recreate_replaces_layers_and_prunes_old_ones(smol: Store) -> None:
    smol.create("m", CreateRequest(from_="smollm2:135m", system="one"))
    old_system = smol.show("m").manifest.layers_of("application/vnd.ollama.image.system")[0]
    smol.create("m", CreateRequest(from_="m", system="two"))
    assert smol.show("m").system == "two"
    assert not smol.has_blob(old_system.digest)
    check_consistent(smol)


def test_case_insensitive_lookup_keeps_disk_casing(smol: Store) -> None:
    assert smol.resolve("SmolLM2:135M").display_shortest == "smollm2:135m"
    smol.copy("SMOLLM2:135m", "SmolLM2:Other")
    assert smol.resolve("smollm2:other").display_shortest == "smollm2:Other"
    assert (smol.root / "manifests/registry.ollama.ai/library/smollm2/Other").is_file()


def test_unknown_and_invalid_names(smol: Store) -> None:
    with pytest.raises(ModelNotFoundError, match="model 'nope' not found"):
        smol.show("nope")
    with pytest.raises(ModelNotFoundError):
        smol.delete("nope")
    with pytest.raises(ModelNotFoundError):
        smol.copy("nope", "x")
    for bad in ["../escape", "a/b/c/d", "", "x:..", "/etc/passwd"]:
        with pytest.raises(ValueError, match="invalid"):
            smol.show(bad)
        with pytest.raises(CreateError, match="invalid model name"):
            smol.create(bad, CreateRequest(from_="smollm2:135m"))
    assert sorted(str(p.relative_to(smol.root)) for p in smol.root.rglob("*") if p.is_dir()) == [
        "blobs",
        "manifests",
        "manifests/registry.ollama.ai",
        "manifests/registry.ollama.ai/library",
        "manifests/registry.ollama.ai/library/smollm2",
    ]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (CreateRequest(), "neither 'from' or 'files' was specified"),
        (CreateRequest(files={"../x.gguf": "sha256:" + "0" * 64}), "file path must be relative"),
        (CreateRequest(files={"/abs.gguf": "sha256:" + "0" * 64}), "file path must be relative"),
        (CreateRequest(files={"m.gguf": "sha256:" + "0" * 64}), "not found"),
        (CreateRequest(files={"m.gguf": "md5:1"}), "invalid digest"),
        (CreateRequest(from_="missing:model"), "not found"),
    ],
)
def test_create_errors(store: Store, request_: CreateRequest, message: str) -> None:
    with pytest.raises(CreateError, match=message.replace("(", r"\(")):
        store.create("m", request_)
    assert store.list() == []


def test_create_rejects_non_gguf_and_broken_gguf(store: Store, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    digest = store.import_file(text)
    with pytest.raises(CreateError, match="supplied file was not in GGUF format"):
        store.create("m", CreateRequest(files={"notes.txt": digest}))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 3)
    digest = store.import_file(broken)
    with pytest.raises(CreateError, match="truncated GGUF"):
        store.create("m", CreateRequest(files={"broken.gguf": digest}))
    assert store.list() == []


def test_blob_is_stored_only_after_its_digest_is_verified(store: Store) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatchError) as info:
        store.write_blob_stream([b"hello"], wrong)
    assert str(info.value) == (
        f'digest mismatch, expected "{wrong}", got '
        '"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"'
    )
    assert list(store.layout.blobs.iterdir()) == []
    digest, created = store.write_blob_bytes(b"hello")
    assert created and store.read_blob(digest) == b"hello"
    assert store.write_blob_bytes(b"hello") == (digest, False)


def test_reads_a_store_laid_out_by_ollama(tmp_path: Path, default_gguf: Path) -> None:
    """A store written by hand exactly as Ollama writes its files (v0.12.10's
    `server/manifest.go` and `server/layer.go`)."""
    root = tmp_path / "ollama-models"
    blobs = root / "blobs"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / f"sha256-{digest}").write_bytes(data)
        return f"sha256:{digest}", len(data)

    model_path = blobs / f"sha256-{SMOL_SHA}"
    os.link(default_gguf, model_path)
    template = blob(b"{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}")
    params = blob(b'{"stop":["<|im_start|>","<|im_end|>"],"temperature":0.7}\n')
    system = blob(b"You are a helpful assistant.")
    license_ = blob(b"Apache License 2.0")
    config = blob(
        json.dumps(
            {
                "model_format": "gguf",
                "model_family": "llama",
                "model_families": ["llama"],
                "model_type": "135M",
                "file_type": "Q4_1",
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            }
        ).encode()
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config[0],
            "size": config[1],
        },
        "layers": [
            {
                "mediaType": "application/vnd.ollama.image.model",
                "digest": f"sha256:{SMOL_SHA}",
                "size": SMOL_SIZE,
            },
            {"mediaType": "application/vnd.ollama.image.template", "digest": template[0],
             "size": template[1]},
            {"mediaType": "application/vnd.ollama.image.license", "digest": license_[0],
             "size": license_[1]},
            {"mediaType": "application/vnd.ollama.image.system", "digest": system[0],
             "size": system[1]},
            {"mediaType": "application/vnd.ollama.image.params", "digest": params[0],
             "size": params[1]},
        ],
    }  # fmt: skip
    manifest_dir = root / "manifests/registry.ollama.ai/library/smollm2"
    manifest_dir.mkdir(parents=True)
    (manifest_dir / "135m").write_text(json.dumps(manifest))
    other = root / "manifests/example.com/team/tiny"
    other.mkdir(parents=True)
    (other / "v1").write_text(json.dumps(manifest))
    os.utime(other / "v1", (1_000_000_000, 1_000_000_000))
    # Things Ollama's glob also sees and skips: an unreadable manifest, a bad name.
    (root / "manifests/registry.ollama.ai/library/smollm2/.tmp-partial").write_text("{")

    store = Store(root)
    entries = store.list()
    assert [e.name.display_shortest for e in entries] == [
        "smollm2:135m",
        "example.com/team/tiny:v1",
    ]
    assert entries[0].config.model_type == "135M"
    shown = store.show("SMOLLM2:135m")
    assert shown.template is not None and shown.template.startswith("{{ if .System }}")
    assert shown.system == "You are a helpful assistant."
    assert shown.parameters == {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.7}
    assert shown.license == ("Apache License 2.0",)
    assert shown.gguf is not None and shown.gguf.architecture == "llama"
    # And a model derived here from the Ollama-written one inherits its layers.
    store.create("derived", CreateRequest(from_="smollm2:135m", system="Short answers."))
    derived = store.show("derived")
    assert derived.template == shown.template and derived.system == "Short answers."
    check_consistent(store)


def test_prune_removes_temp_files_and_unused_blobs(smol: Store) -> None:
    (smol.layout.blobs / "sha256-partial-abc").write_bytes(b"junk")
    orphan, _ = smol.write_blob_bytes(b"orphan")
    assert smol.prune(grace=3600).removed_blobs == 0, "young files are left to their writers"
    report = smol.prune(grace=0)
    assert (report.removed_blobs, report.removed_temp_files) == (1, 1)
    assert not smol.has_blob(orphan)
    check_consistent(smol)
    assert [e.name.display_shortest for e in smol.list()] == ["smollm2:135m"]


CHILD = r"""
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
real_fsync = os.fsync
count = 0
def slow_fsync(fd):
    global count
    count += 1
    print(f"FSYNC {count}", flush=True)
    sys.stdin.readline()  # the parent's word to go on (or its SIGKILL)
    real_fsync(fd)
os.fsync = slow_fsync
from trio_ollama.store import Store
from trio_ollama.store.modelfile import parse_modelfile, to_create_request
store = Store(Path(sys.argv[1]))
text = Path(sys.argv[2]).read_text()
req = to_create_request(parse_modelfile(text), Path(sys.argv[2]).parent, store.import_file)
store.create("victim", req)
print("DONE", flush=True)
"""


def _run_until(store: Store, modelfile: Path, stop_at: int) -> bool:
    """Run a create in a child and SIGKILL it at its `stop_at`-th fsync. True if it finished.
    The child waits at each fsync for the parent's word to go on."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store.root), str(modelfile), str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == f"FSYNC {stop_at}":
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return False
            if line.startswith("FSYNC "):
                proc.stdin.write("\n")
                proc.stdin.flush()
            if line.strip() == "DONE":
                break
        return proc.wait() == 0
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_killed_create_leaves_the_store_as_it_was(smol: Store, tmp_path: Path) -> None:
    """SIGKILL a create at every write it makes; the store stays consistent each time."""
    keep = smol.layout.manifest_path(smol.resolve("smollm2:135m")).read_bytes()
    weights = variant_of(smol.blob_path("sha256:" + SMOL_SHA), tmp_path / "variant.gguf")
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f"FROM {weights}\nSYSTEM hi\nPARAMETER top_k 3\nTEMPLATE {{{{ .Prompt }}}}\n"
    )
    interrupted_with_partial_file = False
    for stop_at in range(1, 20):
        finished = _run_until(smol, modelfile, stop_at)
        check_consistent(smol)
        names = [e.name.display_shortest for e in smol.list()]
        assert "smollm2:135m" in names
        assert smol.layout.manifest_path(smol.resolve("smollm2:135m")).read_bytes() == keep
        if finished:
            assert "victim:latest" in names
            break
        assert "victim:latest" not in names, f"killed at write {stop_at}, yet the model exists"
        temp = [p for p in smol.layout.blobs.iterdir() if p.name.startswith("sha256-partial-")]
        interrupted_with_partial_file |= bool(temp)
        for path in temp:
            path.unlink()
    else:
        pytest.fail("the create never finished")
    assert stop_at > 4, "the create should have been interrupted at several writes"
    assert interrupted_with_partial_file
    assert smol.show("victim").system == "hi"


CONCURRENT = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from trio_ollama.store import Store, CreateRequest
store = Store(Path(sys.argv[1]))
for i in range(15):
    store.create("same", CreateRequest(from_="smollm2:135m", system=sys.argv[2] * (i + 1)))
"""


@pytest.mark.slow
def test_two_processes_creating_the_same_model(smol: Store) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(smol.root), word, str(ROOT)])
        for word in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    check_consistent(smol)
    system = smol.show("same").system
    assert system in ("a" * 15, "b" * 15)
    assert [p for p in smol.layout.blobs.iterdir() if p.name.startswith("sha256-partial-")] == []


def test_tiny_synthetic_gguf_is_importable(store: Store, tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf", arch="qwen2", blocks=3)
    create_from_modelfile(store, "tiny:1", f"FROM {path}", tmp_path)
    entry = store.list()[0]
    assert entry.config.model_family == "qwen2" and entry.config.file_type == "F32"
    assert entry.config.model_type == "200"


def test_adapter_layer(smol: Store, tmp_path: Path) -> None:
    lora = write_tiny_gguf(tmp_path / "lora.gguf", extra={"general.type": "adapter"})
    text = f"FROM smollm2:135m\nADAPTER {lora}\n"
    create_from_modelfile(smol, "tuned", text, tmp_path)
    shown = smol.show("tuned")
    assert len(shown.adapters) == 1 and shown.adapters[0].read_bytes() == lora.read_bytes()
    assert shown.model_path == smol.show("smollm2:135m").model_path
    assert f"ADAPTER {shown.adapters[0]}\n" in shown.modelfile()
    with pytest.raises(CreateError, match="only one adapter"):
        two = write_tiny_gguf(tmp_path / "two.gguf", extra={"general.type": "adapter"}, vocab=17)
        create_from_modelfile(smol, "t2", f"{text}ADAPTER {two}\n", tmp_path)
