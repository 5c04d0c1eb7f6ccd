"""`POST /v1/messages`: Anthropic's Messages API, as Ollama's middleware does it: translate the
request, run the native chat, translate the (streamed) answer. Translations live in
`anthropic.py`; the answering is the OpenAI layer's (`openai_routes.respond`)."""

from __future__ import annotations

from typing import Any

from quart import Response
from quart_trio import QuartTrio

from trio_ollama.api import anthropic as an
from trio_ollama.api import schemas
from trio_ollama.api.compat import decode_body
from trio_ollama.api.errors import APIError
from trio_ollama.api.openai_routes import respond
from trio_ollama.api.responses import combine_chat, decoded, json_response
from trio_ollama.api.service import Service


def anthropic_error(exc: APIError) -> Response:
    return json_response(an.error_body(exc.status, exc.message), exc.status)


async def _relax_think(service: Service, native: dict[str, Any]) -> None:
    """Ollama lets an Anthropic client ask any model to think (coding agents always do): for
    a model that cannot, the request goes on without thinking instead of failing. Any think
    value that asks for thinking counts (an effort too); `False` asks for none."""
    if native.get("think") in (None, False):
        return
    try:
        shown = await service.show(schemas.ShowRequest(model=native["model"]))
    except APIError:
        return  # the chat itself gives the answer (an unknown model's 404)
    if "thinking" not in shown.get("capabilities", ()):
        del native["think"]


def add_anthropic_routes(app: QuartTrio, service: Service) -> None:
    @app.route("/v1/messages", methods=["POST", "OPTIONS"])
    async def v1_messages() -> Response:
        try:
            native, options = await decoded(lambda raw: an.messages_request(decode_body(raw)))
            await _relax_think(service, native)
            request = schemas.ChatRequest.from_json(native)
        except APIError as exc:
            return anthropic_error(exc)
        ident = an.message_id()
        stream = an.MessagesStream(
            ident, options.model, options.estimated_input_tokens, options.web_search
        )
        return await respond(
            service.chat(request),
            options.stream,
            combine_chat,
            lambda final: an.message_response(final, id=ident, web_search=options.web_search),
            stream.events,
            error_reply=anthropic_error,
            stream_error=stream.error_event,
        )
