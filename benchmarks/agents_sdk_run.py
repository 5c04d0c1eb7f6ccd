"""One OpenAI Agents SDK run against an OpenAI-compatible server: an agent with one function
tool, run through the Responses API and through chat completions, each streamed and not.
`benchmarks.agents` runs it with the interpreter that has `openai-agents` installed, as

    python -P benchmarks/agents_sdk_run.py BASE_URL MODEL

(`-P`: this folder must not shadow the SDK's `agents` package with `benchmarks/agents.py`). It
prints one JSON line a run: the API, whether it streamed, the final output, and the kinds of the
items the run produced (a `function_call_output` among them when the model called the tool)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"It is sunny and 21 degrees in {city}."


async def one(model: Any, api: str, stream: bool) -> dict[str, Any]:
    agent = Agent(
        name="helper",
        instructions="You answer questions about the weather. Use the get_weather tool.",
        tools=[get_weather],
        model=model,
        model_settings=ModelSettings(max_tokens=64, temperature=0),
    )
    question = "What is the weather in Paris?"
    if stream:
        streamed = Runner.run_streamed(agent, question, max_turns=3)
        async for _ in streamed.stream_events():
            pass
        items, output = streamed.new_items, streamed.final_output
    else:
        result = await Runner.run(agent, question, max_turns=3)
        items, output = result.new_items, result.final_output
    return {"api": api, "stream": stream, "final_output": output,
            "items": [item.type for item in items]}  # fmt: skip


async def main(base_url: str, model_name: str) -> None:
    set_tracing_disabled(True)  # no traces sent to OpenAI
    client = AsyncOpenAI(base_url=base_url, api_key="dummy", max_retries=0)
    models = {
        "responses": OpenAIResponsesModel(model=model_name, openai_client=client),
        "chat": OpenAIChatCompletionsModel(model=model_name, openai_client=client),
    }
    for api, model in models.items():
        for stream in (False, True):
            print(json.dumps(await one(model, api, stream)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
