"""Images through the real runner subprocess, the real model and a projector made here
(`tests.vision`): what an image does to the output, what it counts, and that image prompts share
the runner with the others and leave it when their client does."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trio

from tests.vision import IMAGE_TOKENS, png, write_projector
from trio_ollama.runner.client import RunnerClient, RunnerError
from trio_ollama.runner.process import open_runner
from trio_ollama.runner.protocol import Completion, Done, Load, Piece, Sampling
from trio_ollama.runner.vision import ImageChunk, cut_segments, split_prompt

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_orphan_processes")]

PROMPT = "<|im_start|>user\n[img-0]What is in the picture?<|im_end|>\n<|im_start|>assistant\n"
A, B = png(40, 30, seed=1), png(40, 30, seed=2)


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_projector(tmp_path_factory.mktemp("vision") / "mmproj.gguf")


def load(gguf: Path, projector: Path, parallel: int = 1) -> Load:
    return Load(
        model_path=str(gguf), num_ctx=1024, num_parallel=parallel, projector_path=str(projector)
    )


async def complete(
    runner: RunnerClient, images: list[bytes], prompt: str = PROMPT, n: int = 8
) -> tuple[str, Done]:
    request = Completion(
        id=0,
        prompt=prompt if images else prompt.replace("[img-0]", ""),
        images=[base64.b64encode(i).decode() for i in images],
        sampling=Sampling(num_predict=n, temperature=0),
    )
    text = ""
    async with runner.completion(request) as stream:
        async for event in stream:
            if isinstance(event, Piece):
                text += event.text
    assert stream.done is not None
    return text, stream.done


async def test_an_image_decides_the_output(default_gguf: Path, projector: Path) -> None:
    """One slot, so each request after the first finds the text before its image cached and
    evaluates the image and what follows it alike: the same image gives the same greedy
    answer, another image another one, and no image another still."""
    async with open_runner(load(default_gguf, projector)) as runner:
        first, _ = await complete(runner, [A])
        other, done_b = await complete(runner, [B])
        again, done_again = await complete(runner, [A])
        none, _ = await complete(runner, [])
    assert first == again
    assert other != first
    assert none != first
    # Reuse stopped at the image that differed: the text before it was cached, not the image.
    assert 0 < done_b.prompt_cached < 8
    assert done_again.prompt_cached == done_b.prompt_cached


async def test_prompt_eval_count_is_text_and_image_tokens(
    default_gguf: Path, projector: Path
) -> None:
    async with open_runner(load(default_gguf, projector)) as runner:
        text_tokens = await runner.count_tokens(PROMPT.replace("[img-0]", ""))
        _, done = await complete(runner, [A])
        _, two = await complete(runner, [A, B], prompt=PROMPT.replace("[img-0]", "[img-0][img-1]"))
    assert done.prompt_images == IMAGE_TOKENS  # what mtmd made of the image
    assert done.prompt_eval_count == text_tokens + IMAGE_TOKENS
    assert two.prompt_eval_count == text_tokens + 2 * IMAGE_TOKENS


async def test_image_requests_share_the_runner_with_text(
    default_gguf: Path, projector: Path
) -> None:
    """Two image prompts and a text one at once, each in its own slot: all three answer, and
    their streams overlap (the text one does not wait for the images to be done)."""
    spans: dict[str, tuple[float, float]] = {}
    async with open_runner(load(default_gguf, projector, parallel=3)) as runner:

        async def run(name: str, images: list[bytes]) -> None:
            start = trio.current_time()
            text, done = await complete(runner, images, n=16)
            assert text and done.eval_count > 0
            spans[name] = (start, trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", [A])
            nursery.start_soon(run, "b", [B])
            nursery.start_soon(run, "text", [])
    ends = sorted(end for _, end in spans.values())
    starts = [start for start, _ in spans.values()]
    assert max(starts) < ends[0], "the three ran one after another"


async def test_a_client_hanging_up_during_images_frees_its_slot(
    default_gguf: Path, projector: Path
) -> None:
    """A prompt of 40 images takes 40 steps of image evaluation; its client leaves during them.
    The one slot is free at once for the next request, which answers."""
    many = [png(32, 32, seed=i) for i in range(40)]
    tags = "".join(f"[img-{i}]" for i in range(40))
    async with open_runner(load(default_gguf, projector)) as runner:
        with trio.move_on_after(1.0) as scope:
            await complete(runner, many, prompt=PROMPT.replace("[img-0]", tags))
        assert scope.cancelled_caught, "the images were all done before the client left"
        with trio.fail_after(60):
            _, done = await complete(runner, [A])
        assert done.prompt_images == IMAGE_TOKENS


async def test_bad_images_fail_their_request_alone(default_gguf: Path, projector: Path) -> None:
    corrupt = A[:33] + bytes(len(A) - 45) + A[-12:]  # header and IEND, no pixels that decode
    async with open_runner(load(default_gguf, projector)) as runner:
        for bad in (b"not an image at all", A[: len(A) // 2], corrupt):
            with pytest.raises(RunnerError, match="invalid image input") as caught:
                await complete(runner, [bad])
            assert caught.value.invalid
        with pytest.raises(RunnerError, match="invalid image index: 1"):
            await complete(runner, [A], prompt=PROMPT.replace("[img-0]", "[img-1]"))
        text, _ = await complete(runner, [A])
        assert text


async def test_a_runner_without_projector_refuses_images(default_gguf: Path) -> None:
    async with open_runner(Load(model_path=str(default_gguf), num_ctx=512)) as runner:
        with pytest.raises(RunnerError, match="image input is not supported"):
            await complete(runner, [A])


def test_split_prompt_reads_ollamas_tags() -> None:
    assert split_prompt("a[img-1]b[img-0]", 2) == ["a", 1, "b", 0]
    assert split_prompt("[img-0]", 1) == [0]


def test_a_cut_keeps_images_whole() -> None:
    image = ImageChunk(chunk=0, n_tokens=4, n_pos=4, key="k")
    segments = [[1, 2, 3], image, [4, 5, 6]]
    assert cut_segments(segments, 100, 0) == segments
    # Seven positions of ten: the image and the tail fit, the oldest text is cut.
    assert cut_segments(segments, 8, 0) == [[3], image, [4, 5, 6]]
    assert cut_segments(segments, 8, 1) == [[1], image, [4, 5, 6]]
    # No room for the image: only the newest text.
    assert cut_segments(segments, 6, 0) == [[4, 5, 6]]
