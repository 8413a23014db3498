"""A server bug's 500, in the API's JSON shape, answered from inside the CORS middleware.

Starlette answers an exception that no handler took from its outermost middleware, outside every other one: that
500 had no CORS headers, so a page of another origin (`--cors-origin`) saw a network error instead of the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse

from motif_lite.server.schema import ApiError


class InternalErrors:
    """ASGI middleware: 500 (`server_error`, the message naming the exception) for an exception raised by the app
    before it began its answer; the exception then goes on up, to be logged with its traceback as before."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as exc:
            if not started:  # once an answer has begun, nothing else can be sent on it
                error = ApiError(500, f"internal error: {type(exc).__name__}: {exc}", None, "server_error")
                await JSONResponse(error.body(), status_code=500)(scope, receive, send)
            raise
