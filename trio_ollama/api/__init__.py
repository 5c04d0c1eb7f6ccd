"""The HTTP API: Ollama's native endpoints and the OpenAI layer, on quart-trio.

`Service` is the work without HTTP (typed requests in, JSON out); `create_app(service)` is the
Quart app; `serve(settings)` runs the whole server in your nursery. The HTTP stack (Quart and
the ASGI server) is imported only by the last two.
"""

from typing import Any

from trio_ollama.api.errors import APIError
from trio_ollama.api.service import Service


def __getattr__(name: str) -> Any:
    if name == "serve":
        from trio_ollama.api.server import serve

        return serve
    if name == "create_app":
        from trio_ollama.api.app import create_app

        return create_app
    raise AttributeError(f"module 'trio_ollama.api' has no attribute {name!r}")


__all__ = ["APIError", "Service", "create_app", "serve"]
