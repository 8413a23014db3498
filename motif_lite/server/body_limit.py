"""The body size limit: an ASGI middleware that answers 413 before an oversized body is parsed to its end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse

from motif_lite.server.clip_upload import video_upload_limit
from motif_lite.server.schema import ApiError, upload_limit


class BodyTooLarge(Exception):
    """Raised from the app's `receive` once more than the limit has arrived: it stops the app reading the body."""


class BodyLimit:
    """ASGI middleware: 413 for a body over `max_bytes` (`max_form_bytes` for a multipart one, which may hold a video
    to extend), by its Content-Length or by counting what arrives.

    A body a little over the limit is read to its end and dropped, so that the client sees the 413 rather than
    a connection closed in the middle of its upload; a declared length far over it is refused at once.
    """

    DRAIN_FACTOR = 4

    def __init__(
        self, app, max_bytes: int, max_upload_bytes: int, max_form_bytes: int, max_video_upload_bytes: int
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_form_bytes = max_form_bytes
        # What the limits are made from, named in the message.
        self.max_upload_bytes, self.max_video_upload_bytes = max_upload_bytes, max_video_upload_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        form = headers.get(b"content-type", b"").split(b";")[0].strip().lower() == b"multipart/form-data"
        limit = self.max_form_bytes if form else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, int(declared) <= self.DRAIN_FACTOR * limit, limit, form)
            return
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, True, limit, form)

    async def _refuse(self, scope: dict, receive, send, drain: bool, limit: int, form: bool) -> None:
        drained = 0
        while drain and drained <= self.DRAIN_FACTOR * limit:
            message = await receive()
            drained += len(message.get("body", b""))
            drain = message["type"] == "http.request" and message.get("more_body", False)
        limits = f"{upload_limit(self.max_upload_bytes)}, as a file or in JSON as base64"
        if form:
            limits = f"{upload_limit(self.max_upload_bytes)}; {video_upload_limit(self.max_video_upload_bytes)}"
        error = ApiError(413, f"the request is larger than this server's limit of {limit:,} bytes ({limits})", None,
                         "request_too_large")  # fmt: skip
        response = JSONResponse(error.body(), status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)
