"""The native API's work, independent of HTTP: each method takes a parsed request and returns
a JSON object, or streams JSON chunks as a `trio.as_safe_channel` (`async with
service.chat(req) as chunks`), so that a stream's work always ends with the block that reads it.
Routes (`app.py`) and the OpenAI and Anthropic layers all call it.

`Service` is each job at once, over the lookups they share (`access.ModelAccess`): generate and
chat (`generation`), embeddings (`embedding`), the store and the running models (`admin`), pull
and push (`transfers`). Blocking store work runs in threads; model access goes through the
scheduler, whose `acquire` scope is held for as long as a response streams, so a client that
hangs up frees its slot.
"""

from __future__ import annotations

import attrs

from trio_ollama.api.admin import ModelAdmin
from trio_ollama.api.embedding import Embedding
from trio_ollama.api.generation import Generation
from trio_ollama.api.transfers import Transfers
from trio_ollama.version import OLLAMA_API_VERSION

__all__ = ["Service"]


@attrs.define
class Service(Generation, Embedding, ModelAdmin, Transfers):
    def version(self) -> dict[str, str]:
        return {"version": OLLAMA_API_VERSION}
