"""`POST /v1/responses`: OpenAI's Responses API, as Ollama's middleware does it: translate the
request, run the native chat, translate the (streamed) answer. Translations live in
`openai_responses.py`; the answering and the errors are the OpenAI layer's (`openai_routes`)."""

from __future__ import annotations

import time

from quart import Response
from quart_trio import QuartTrio

from trio_ollama.api import openai_responses as orr
from trio_ollama.api import schemas
from trio_ollama.api.compat import decode_body
from trio_ollama.api.errors import APIError
from trio_ollama.api.openai_routes import openai_error, respond
from trio_ollama.api.responses import as_request, combine_chat, decoded
from trio_ollama.api.service import Service


def add_responses_routes(app: QuartTrio, service: Service) -> None:
    @app.route("/v1/responses", methods=["POST", "OPTIONS"])
    async def v1_responses() -> Response:
        try:
            request, options = await decoded(
                lambda raw: as_request(schemas.ChatRequest, orr.responses_request(decode_body(raw)))
            )
        except APIError as exc:
            return openai_error(exc)
        ident, item, created = orr.response_id(), orr.item_id(), int(time.time())
        stream = orr.ResponsesStream(options.request, ident, item, created)
        return await respond(
            service.chat(request),
            options.stream,
            combine_chat,
            lambda final: orr.response_object(
                final,
                options.request,
                id=ident,
                item=item,
                created=created,
                completed=int(time.time()),
            ),
            lambda native: stream.events(native, completed=int(time.time())),
            stream_error=stream.error_event,
        )
