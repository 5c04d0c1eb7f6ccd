"""Vision through the real server: a model made of the real SmolLM2 GGUF and a projector made
here (`tests.vision`), created as Ollama creates one (a Modelfile's second FROM, or
`/api/create` with both files), shown with its projector, and asked about images by the native
API and by the official ollama, openai and anthropic clients. Bad images are refused with a
400 and leave the runner serving."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from tests.server import running_server
from tests.vision import png, png_header, write_projector
from trio_ollama.store import Store
from trio_ollama.store.default_model import ensure_default_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]

IMAGE = png(40, 30, seed=1)
OPTIONS = {"temperature": 0, "num_predict": 6}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, default_gguf: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("vision") / "models"
    ensure_default_model(Store(root))
    folder = tmp_path_factory.mktemp("modelfile")
    write_projector(folder / "mmproj.gguf")
    # Ollama's import of a vision model: its GGUF, then its projector.
    (folder / "Modelfile").write_text(f"FROM {default_gguf}\nFROM ./mmproj.gguf\n")
    with running_server(root) as base:
        env = {**os.environ, "OLLAMA_HOST": base.removeprefix("http://")}
        created = subprocess.run(
            [sys.executable, "-m", "trio_ollama", "create", "seer", "-f", "Modelfile"],
            cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        yield base


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def generate(url: str, images: list[str], **fields: Any) -> httpx.Response:
    body = {"model": "seer", "prompt": "What is this?", "images": images, "stream": False}
    return httpx.post(f"{url}/api/generate", json={**body, "options": OPTIONS, **fields},
                      timeout=300)  # fmt: skip


def test_the_model_shows_its_projector(url: str) -> None:
    shown = httpx.post(f"{url}/api/show", json={"model": "seer"}, timeout=30).json()
    assert "vision" in shown["capabilities"]
    assert shown["projector_info"]["clip.projector_type"] == "mlp"
    assert shown["projector_info"]["clip.vision.projection_dim"] == 576


def test_api_create_with_both_files(url: str, tmp_path: Path, default_gguf: Path) -> None:
    projector = write_projector(tmp_path / "mmproj.gguf").read_bytes()
    files = {}
    for name, data in (("model.gguf", default_gguf.read_bytes()), ("mmproj.gguf", projector)):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        httpx.post(f"{url}/api/blobs/{digest}", content=data, timeout=60).raise_for_status()
        files[name] = digest
    created = httpx.post(f"{url}/api/create", json={"model": "seer2", "files": files,
                                                    "stream": False}, timeout=120)  # fmt: skip
    assert created.status_code == 200, created.text
    shown = httpx.post(f"{url}/api/show", json={"model": "seer2"}, timeout=30).json()
    assert "vision" in shown["capabilities"]
    assert "projector_info" in shown


def test_an_image_is_seen_and_counted(url: str) -> None:
    seen = generate(url, [b64(IMAGE)])
    assert seen.status_code == 200, seen.text
    blind = generate(url, [])
    # The made projector's 16 image tokens, and nothing else of the prompt changed.
    assert seen.json()["prompt_eval_count"] == blind.json()["prompt_eval_count"] + 16
    # The loaded model's memory counts the projector (its weights and its compute buffer).
    (loaded,) = httpx.get(f"{url}/api/ps", timeout=30).json()["models"]
    assert loaded["context_length"] >= 2048  # Ollama's floor for a model that sees


def test_chat_places_the_image_where_the_template_does(url: str) -> None:
    body = {"model": "seer", "stream": False, "_debug_render_only": True, "messages": [
        {"role": "user", "content": "Look: [img] and say", "images": [b64(IMAGE)]}]}  # fmt: skip
    rendered = httpx.post(f"{url}/api/chat", json=body, timeout=30).json()["_debug_info"]
    assert "Look: [img-0] and say" in rendered["rendered_template"]
    assert rendered["image_count"] == 1


def test_ollama_client(url: str, tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(IMAGE)
    reply = ollama.Client(host=url).generate(
        model="seer", prompt="What is this?", images=[str(path)], options=OPTIONS
    )
    assert reply.response and reply.prompt_eval_count and reply.prompt_eval_count > 16


def test_openai_client(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    reply = client.chat.completions.create(
        model="seer", max_tokens=6, temperature=0,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(IMAGE)}},
        ]}],
    )  # fmt: skip
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens > 16


def test_anthropic_client(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="unused")
    reply = client.messages.create(
        model="seer", max_tokens=6,
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": b64(IMAGE)}},
            {"type": "text", "text": "What is this?"},
        ]}],
    )  # fmt: skip
    assert reply.content and reply.usage.input_tokens > 16


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (IMAGE[: len(IMAGE) // 2], "truncated PNG"),
        (b"", "empty"),
        (png_header(20_000, 20_000) + IMAGE[33:], "20000x20000 pixels"),
        (b"%PDF-1.7 not a picture", "not a PNG, JPEG, GIF or BMP"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "WebP"),
        # A whole PNG whose pixels do not decode: only the runner's decoder finds it.
        (IMAGE[:33] + bytes(len(IMAGE) - 45) + IMAGE[-12:], "invalid image input"),
    ],
)
def test_bad_images_are_refused_and_the_runner_goes_on(
    url: str, image: bytes, message: str
) -> None:
    refused = generate(url, [b64(image)])
    assert refused.status_code == 400, refused.text
    assert message in refused.json()["error"]
    answered = generate(url, [b64(IMAGE)])
    assert answered.status_code == 200, answered.text
    # The runner that refused it answered: none crashed, none had to be loaded again.
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    assert 'reason="crashed"' not in metrics
    assert 'trio_ollama_loads_total{model="seer:latest",result="ok"} 1.0' in metrics


def test_a_model_without_vision_refuses_images(url: str) -> None:
    refused = httpx.post(f"{url}/api/generate", json={
        "model": "smollm2:135m", "prompt": "hi", "images": [b64(IMAGE)], "stream": False},
        timeout=60)  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("image input is not supported")
