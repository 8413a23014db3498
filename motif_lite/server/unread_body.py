"""Answers given before the request's body was read: a full queue's 429, a wrong key's 401, a loading server's 503,
an unknown route's 404, a missing remix source's 404, a bug's 500.

Such an answer on a kept-alive connection left the client's upload unread: the server then read and dropped all of
it (up to --max-video-upload-mb, which the early answer was meant to spare), and a client that had sent
`Expect: 100-continue` and then no body saw its next request on the connection taken as that body, unanswered. A
short rest of the body is read and dropped first, so that the connection stays open for the client's next request;
a longer one, or one the client waits to send (`Expect: 100-continue`), is not: the answer says `Connection: close`,
and the connection ends after it, as the 413 of `BodyLimit` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Receive = Callable[[], Awaitable[dict]]


class CloseAfterUnreadBody:
    """ASGI middleware: a response that starts before its request's body has arrived whole reads up to `DRAIN_BYTES`
    more of it; where the body is longer (or awaits a `100 Continue`) the response gets `Connection: close`."""

    DRAIN_BYTES = 1024 * 1024  # a JSON create with its prompt and settings; an image upload is more

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Receive, send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        declared = headers.get(b"content-length", b"").strip()
        if scope["type"] != "http" or (declared in (b"", b"0") and b"transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body to leave unread
            return
        received, ended = 0, False

        async def noting_receive() -> dict:
            nonlocal received, ended
            message = await receive()
            received += len(message.get("body", b""))
            ended = ended or message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def closing_send(message: dict) -> None:
            # An answer that says already what becomes of the connection (the 413 of `BodyLimit`) is left as it is.
            early = message["type"] == "http.response.start" and not ended and not says_connection(message)
            if early and not await self._drained(noting_receive, headers, declared, received):
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, noting_receive, closing_send)

    async def _drained(self, receive: Receive, headers: dict, declared: bytes, received: int) -> bool:
        """Whether the rest of the body was read (and dropped), as it is when it is at most `DRAIN_BYTES`."""
        waits_for_continue = headers.get(b"expect", b"").strip().lower() == b"100-continue" and received == 0
        if waits_for_continue:  # reading would send the `100 Continue` the early answer is there to withhold
            return False
        if declared.isdigit() and int(declared) - received > self.DRAIN_BYTES:
            return False
        drained = 0
        while drained <= self.DRAIN_BYTES:
            message = await receive()
            drained += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return True
        return False


def says_connection(start: dict) -> bool:
    """Whether a response's start message has a `Connection` header."""
    return any(name.lower() == b"connection" for name, _ in start.get("headers", ()))
