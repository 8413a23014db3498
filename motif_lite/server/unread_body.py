"""Answers given before the request's body was read: a full queue's 429, a wrong key's 401, a loading server's 503,
an unknown route's 404, a missing remix source's 404.

Such an answer on a kept-alive connection left the client's upload unread: the server then read and dropped all of
it (up to --max-video-upload-mb, which the early answer was meant to spare), and a client that had sent
`Expect: 100-continue` and then no body saw its next request on the connection taken as that body, unanswered. A
short rest of the body that arrives within a second is read and dropped first, so that the connection stays open for
the client's next request. A longer one, a slower one, or one the client waits to send (`Expect: 100-continue`) is
not: the answer says `Connection: close`, and the connection ends after it, as after the 413 of `BodyLimit`. Before
it ends, what the client goes on sending is read and dropped for up to two seconds (a lingering close): a client
that sends its whole upload before it reads (Python's http.client) would otherwise find the connection reset, its
answer lost, as the server closed with its upload unread. (A bug's 500 ends the connection anyway.) A stop of the
server (SIGTERM, Ctrl-C) ends that reading at once: the connection ends anyway, and the stop need not wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Receive = Callable[[], Awaitable[dict]]


class CloseAfterUnreadBody:
    """ASGI middleware: a response that starts before its request's body has arrived whole reads up to `DRAIN_BYTES`
    more of it, for up to `DRAIN_SECONDS`; where the body is longer or slower (or awaits a `100 Continue`) the
    response gets `Connection: close`, and, but after a `100 Continue` withheld, its end waits while the rest of the
    body is read and dropped, up to `LINGER_SECONDS` and `LINGER_BYTES`. Both readings end at once once `stopping()`
    says so (the server stops: `VideoServer.stop`, from another thread)."""

    DRAIN_BYTES = 1024 * 1024  # a JSON create with its prompt and settings; an image upload is more
    DRAIN_SECONDS = 1.0  # a client that stalls part way through a short body gets its answer after this
    LINGER_SECONDS = 2.0  # enough for an upload on a fast network; a slow one still finds the connection reset
    LINGER_BYTES = 128 * 1024 * 1024  # more than the largest body `BodyLimit` lets through by default

    def __init__(self, app, stopping: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.stopping = stopping  # whether the server stops: read, never waited on

    async def __call__(self, scope: dict, receive: Receive, send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        declared = headers.get(b"content-length", b"").strip()
        if scope["type"] != "http" or (declared in (b"", b"0") and b"transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body to leave unread
            return
        received, ended, linger = 0, False, False

        async def noting_receive() -> dict:
            nonlocal received, ended
            message = await receive()
            received += len(message.get("body", b""))
            ended = ended or message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def read_rest(max_bytes: int) -> None:
            """Reads and drops the body until its end or until more than `max_bytes` of it were read."""
            start = received
            while not ended and received - start <= max_bytes:
                await noting_receive()

        async def closing_send(message: dict) -> None:
            nonlocal linger
            # An answer that says already what becomes of the connection (the 413 of `BodyLimit`) is left as it is.
            early = message["type"] == "http.response.start" and not ended and not says_connection(message)
            if early and not waits_for_continue(headers, received):
                too_long = declared.isdigit() and int(declared) - received > self.DRAIN_BYTES
                if not too_long:
                    await within(read_rest(self.DRAIN_BYTES), self.DRAIN_SECONDS, self.stopping)
                linger = not ended
            if early and not ended:
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            if linger and message["type"] == "http.response.body" and not message.get("more_body", False):
                # The answer goes out whole now; the connection's end (the last, empty part) waits for the upload.
                await send({**message, "more_body": True})
                await within(read_rest(self.LINGER_BYTES), self.LINGER_SECONDS, self.stopping)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, noting_receive, closing_send)


STOP_SEEN_WITHIN = 0.05  # seconds: how soon a reading sees a stop asked for by another thread


async def within(reading: Awaitable[None], seconds: float, stopping: Callable[[], bool]) -> None:
    """Awaits `reading` for up to `seconds`, then gives it up; gives it up at once where `stopping()` says the server
    stops. That is set by another thread (a signal's handler, not uvicorn's loop): it is asked every
    `STOP_SEEN_WITHIN`."""
    task = asyncio.ensure_future(reading)
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        while not task.done() and not stopping():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait({task}, timeout=min(left, STOP_SEEN_WITHIN))
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # its cancellation, not an error
    if not task.cancelled():
        task.result()  # what went wrong in the reading, raised here as `asyncio.wait_for` raised it


def waits_for_continue(headers: dict, received: int) -> bool:
    """Whether the client waits for a `100 Continue` before it sends the body: reading the body would send the go-ahead
    the early answer is there to withhold."""
    return headers.get(b"expect", b"").strip().lower() == b"100-continue" and received == 0


def says_connection(start: dict) -> bool:
    """Whether a response's start message has a `Connection` header."""
    return any(name.lower() == b"connection" for name, _ in start.get("headers", ()))
