"""The registry code's pure parts, no registry needed: auth challenges, the saved progress of a
download, part sizes, status lines, settings, credentials, and the registry tests' own rule
(skipped where the binary is absent, failed under CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.registry import registry_binary
from trio_ollama.config import DEFAULT_TRANSFER_PART_SIZE, Settings
from trio_ollama.registry import RegistryError
from trio_ollama.registry.client import Challenge, read_netrc
from trio_ollama.registry.download import MAX_PART_SIZE, SAVE_EVERY, PartialState, part_size
from trio_ollama.registry.pull import manifest_layers
from trio_ollama.registry.transfer import layer_status

DIGEST = "sha256:" + "ab" * 32


def test_challenges_parse_as_registries_send_them() -> None:
    bearer = Challenge.parse(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:ns/m:pull,push"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:ns/m:pull,push",
    }
    assert Challenge.parse('Basic realm="basic-realm"') == Challenge(
        "basic", {"realm": "basic-realm"}
    )
    assert Challenge.parse("") == Challenge("", {})


def test_part_sizes_follow_ollama() -> None:
    assert part_size(98_000_000, DEFAULT_TRANSFER_PART_SIZE) == DEFAULT_TRANSFER_PART_SIZE
    assert part_size(16 * 200_000_000, DEFAULT_TRANSFER_PART_SIZE) == 200_000_000
    assert part_size(10**12, DEFAULT_TRANSFER_PART_SIZE) == MAX_PART_SIZE
    assert part_size(0, 1) == 1
    assert len(PartialState.fresh(98_000_000, 8 << 20).completed) == 12


def test_saved_progress_is_checked_before_it_is_trusted() -> None:
    state = PartialState.fresh(100, 30)
    assert state.completed == [0, 0, 0, 0] and state.bounds(3) == (90, 100)
    state.completed[:] = [30, 5, 0, 10]
    raw = state.to_bytes()
    assert PartialState.load(raw, 100, 30) == state
    assert PartialState.load(raw, 101, 30) is None  # another blob size
    assert PartialState.load(raw, 100, 25) is None  # other parts
    for bad in (b"", b"{", b"[]", b'{"total": 100}',
                b'{"total": 100, "part_size": 30, "completed": [31, 0, 0, 0]}',
                b'{"total": 100, "part_size": 30, "completed": [0, 0, 0, 11]}',
                b'{"total": 100, "part_size": 30, "completed": [0, 0, 0]}',
                b'{"total": 100, "part_size": 30, "completed": [0, 0, 0, -1]}',
                b'{"total": 100, "part_size": 30, "completed": [0, 0, 0, "1"]}'):  # fmt: skip
        assert PartialState.load(bad, 100, 30) is None, bad


def test_layer_status_lines_are_ollamas() -> None:
    assert layer_status("pulling", DIGEST, 10, 0) == {
        "status": "pulling abababababab", "digest": DIGEST, "total": 10,
    }  # fmt: skip
    assert layer_status("pushing", DIGEST, 10, 4)["completed"] == 4


def test_manifests_from_a_registry_are_checked() -> None:
    good = (
        b'{"schemaVersion":2,"config":{"mediaType":"c","digest":"' + DIGEST.encode() + b'",'
        b'"size":2},"layers":[{"mediaType":"m","digest":"sha256-' + b"CD" * 32 + b'","size":3}]}'
    )
    assert [x.digest for x in manifest_layers(good)] == ["sha256:" + "cd" * 32, DIGEST]
    for bad in (b"nope", b"{}", good.replace(b"sha256-", b"../../x")):
        with pytest.raises(RegistryError, match=r"^pull model manifest: "):
            manifest_layers(bad)


def test_transfer_settings_come_from_the_environment() -> None:
    assert Settings.from_env({}).max_transfer_streams == 4
    env = {"OLLAMA_MAX_TRANSFER_STREAMS": "8", "TRIO_OLLAMA_TRANSFER_PART_SIZE": "1048576"}
    settings = Settings.from_env(env)
    assert (settings.max_transfer_streams, settings.transfer_part_size) == (8, 1 << 20)
    assert Settings.from_env({"OLLAMA_MAX_TRANSFER_STREAMS": "0"}).max_transfer_streams == 1
    assert Settings.from_env({"OLLAMA_MAX_TRANSFER_STREAMS": "x"}).max_transfer_streams == 4
    # How often a download saves its progress: a second, as the download's own default.
    assert Settings.from_env({}).transfer_save_every == SAVE_EVERY == 1.0
    assert Settings.from_env({"TRIO_OLLAMA_TRANSFER_SAVE_MS": "50"}).transfer_save_every == 0.05
    assert Settings.from_env({"TRIO_OLLAMA_TRANSFER_SAVE_MS": "0"}).transfer_save_every == 0.001
    assert Settings.from_env({"TRIO_OLLAMA_TRANSFER_SAVE_MS": "1s"}).transfer_save_every == 1.0


def test_credentials_come_from_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine 127.0.0.1:5000 login a password b\nmachine registry.example login c password d\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert read_netrc("127.0.0.1:5000") == ("a", "b")
    assert read_netrc("registry.example:443") == ("c", "d")
    assert read_netrc("elsewhere") is None
    monkeypatch.setenv("NETRC", str(tmp_path / "absent"))
    assert read_netrc("127.0.0.1:5000") is None


def test_without_the_registry_binary_tests_skip_except_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="docker-registry is not installed"):
        registry_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        registry_binary()
