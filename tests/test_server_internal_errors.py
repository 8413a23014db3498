"""The 500 that `InternalErrors` answers for a bug, and what it leaves alone: an answer already begun."""

from __future__ import annotations

import asyncio
import json

import pytest

from motif_lite.server.internal_errors import InternalErrors


def messages_sent(app) -> tuple[list[dict], BaseException | None]:
    """The ASGI messages `InternalErrors(app)` sends for one GET, and the exception that went on up."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/videos", "headers": [], "query_string": b""}
    try:
        asyncio.run(InternalErrors(app)(scope, receive, send))
    except RuntimeError as exc:
        return sent, exc
    return sent, None


def test_a_bug_before_the_answer_is_a_500_in_the_apis_shape_and_goes_on_up_to_the_log():
    async def app(scope, receive, send):
        raise RuntimeError("a bug")

    sent, raised = messages_sent(app)
    assert str(raised) == "a bug"
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["error"]["message"] == "internal error: RuntimeError: a bug"


@pytest.mark.parametrize("after", ["start", "body"])
def test_a_bug_once_the_answer_has_begun_sends_no_second_answer(after):
    # A second http.response.start on a begun answer is an ASGI error of its own (the server's log then named it,
    # not the bug); the client's answer is cut short either way.
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if after == "body":
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("a bug")

    sent, raised = messages_sent(app)
    assert str(raised) == "a bug"
    assert [message["type"] for message in sent].count("http.response.start") == 1, sent
