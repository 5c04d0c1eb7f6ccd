"""The header check of images (`trio_ollama.images`), Ollama's image tags in a fitted prompt,
and the projector's share of the memory estimate: the pure parts of vision."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.vision import png, png_header, write_projector
from trio_ollama.gguf_info import read_gguf_info
from trio_ollama.images import check_image, image_size
from trio_ollama.prompt import IMAGE_TOKENS, ModelPrompt, fit_prompt, tag_images
from trio_ollama.scheduler.memory import estimate, projector_graph_size
from trio_ollama.templates import Message


def jpeg(width: int, height: int) -> bytes:
    """A JPEG's markers up to its frame header: SOI, an APP0 segment, then SOF0."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + bytes(9)
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + bytes(3)
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_sizes_from_headers() -> None:
    assert image_size(png(40, 30)) == ("png", 40, 30)
    assert image_size(jpeg(640, 480)) == ("jpeg", 640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 7, 9) + bytes(8)) == ("gif", 7, 9)
    bmp = b"BM" + bytes(16) + struct.pack("<ii", 5, -6) + bytes(30)
    assert image_size(bmp) == ("bmp", 5, 6)  # a top-down bitmap's height is negative


def test_what_is_refused() -> None:
    assert check_image(png(40, 30), 0) is None
    assert check_image(jpeg(640, 480), 0) is None
    refused = {
        b"": "empty",
        png(40, 30)[:50]: "truncated PNG",
        png_header(20_000, 20_000) + png(1, 1)[33:]: "20000x20000 pixels",
        jpeg(20_000, 20_000): "20000x20000 pixels",
        b"\xff\xd8\xff\xe0\x00\x10JFIF": "truncated JPEG",
        b"RIFF\0\0\0\0WEBPVP8 ": "WebP",
        b"hello": "not a PNG, JPEG, GIF or BMP",
    }
    for data, reason in refused.items():
        problem = check_image(data, 3)
        assert problem is not None and problem.startswith("invalid image input: image 3")
        assert reason in problem


def test_tags_as_ollama_places_them() -> None:
    messages = [
        Message(role="user", content="first", images=(b"a", b"b")),
        Message(role="assistant", content="ok"),
        Message(role="user", content="and [img] here", images=(b"c",)),
    ]
    tagged, images = tag_images(messages)
    assert [m.content for m in tagged] == ["[img-0][img-1]first", "ok", "and [img-2] here"]
    assert images == (b"a", b"b", b"c")


async def test_history_counts_each_image_and_tags_what_is_kept() -> None:
    model = ModelPrompt(go=None, jinja=None, system=None, messages=(), embedding=False,
                        has_projector=True)  # fmt: skip
    messages = [
        Message(role="user", content="old", images=(b"old",)),
        Message(role="user", content="new", images=(b"new",)),
    ]

    async def tokenize(text: str) -> int:
        return len(text)

    # Room for one image and its text: the older message and its image are dropped.
    fitted = await fit_prompt(model, messages, num_ctx=IMAGE_TOKENS + 20, tokenize=tokenize,
                              truncate=True)  # fmt: skip
    assert fitted.text == "[img-0]new"
    assert fitted.images == (b"new",)
    everything = await fit_prompt(model, messages, num_ctx=4 * IMAGE_TOKENS, tokenize=tokenize,
                                  truncate=True)  # fmt: skip
    assert everything.text == "[img-0]old[img-1]new"
    assert everything.images == (b"old", b"new")


def test_the_estimate_counts_the_projector(tmp_path: Path, default_gguf: Path) -> None:
    model = read_gguf_info(default_gguf)
    projector = read_gguf_info(write_projector(tmp_path / "mmproj.gguf"))
    graph = projector_graph_size(projector)
    assert 0 < graph < 1024 * 1024  # llama.cpp logs 0.04 MiB for this projector's graph
    alone = estimate(model, [], num_ctx=2048, num_parallel=1, num_batch=512, num_gpu=0)
    seeing = estimate(model, [], num_ctx=2048, num_parallel=1, num_batch=512, num_gpu=0,
                      projectors=[projector])  # fmt: skip
    assert seeing.total_size - alone.total_size == projector.weights_size + graph
