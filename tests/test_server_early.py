"""Answers the server gives before the work a request would cost: a full queue's 429 before an upload is read, and a
download's 304 where the client already holds the file (If-None-Match)."""

from __future__ import annotations

import calendar
import contextlib
import datetime
import email.utils
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import HOST, TINY, InProcessServer, head_request, multipart  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402

PROMPT = "a red fox runs through snow"
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1)  # minutes of work: deleted again by the test


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    return load_pipeline(shared_checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")


def start_upload(port: int, path: str, declared: int, first_part: bytes, expect: str = "") -> socket.socket:
    """A multipart POST that declares `declared` bytes of body and sends only `first_part` of them."""
    sock = socket.create_connection((HOST, port), timeout=15)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: multipart/form-data; boundary=motiflitetestboundary"
        f"\r\nContent-Length: {declared}\r\n{expect}\r\n"
    )
    sock.sendall(head.encode() + first_part)
    return sock


def response_of(sock: socket.socket) -> tuple[int, bytes, dict[str, str]]:
    """The response the server sends on `sock` (a read past its 15 s timeout raises)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}


def test_a_full_queue_is_429_before_an_upload_is_read(pipe, tmp_path):
    # The server read (and spooled to disk) a whole upload of up to --max-video-upload-mb, then checked it, and
    # only then said the queue was full. The body here never ends: its answer can only come before it is read.
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        code, long_job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200, long_job
        code, full, headers = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})  # the JSON path's 429
        assert (code, full["error"]["code"], headers["retry-after"]) == (429, "queue_full", "30")
        first_part, _ = multipart({"prompt": PROMPT}, {})
        routes = ("/v1/videos", "/v1/videos/extensions", f"/v1/videos/{long_job['id']}/remix")
        for route in routes:
            sock = start_upload(server.port, route, 50 * 1024 * 1024, first_part[:-40])
            try:
                status, body, headers = response_of(sock)
            finally:
                sock.close()
            assert (status, headers["retry-after"]) == (429, "30"), (route, body)
            assert json.loads(body) == full, route  # the same message and code as after a read
        # curl sends a large form with `Expect: 100-continue` and waits: the 429 comes instead of the go-ahead.
        sock = start_upload(server.port, "/v1/videos", 50 * 1024 * 1024, b"", "Expect: 100-continue\r\n")
        try:
            assert sock.makefile("rb").readline().split()[1] == b"429"  # http.client would skip a `100 Continue`
        finally:
            sock.close()
        assert server.request("DELETE", f"/v1/videos/{long_job['id']}")[0] == 200
        # With a free place the same kind of upload is read and queued as before.
        body, headers = multipart({"prompt": PROMPT, **{key: str(value) for key, value in TINY.items()}}, {})
        code, video, _ = server.request("POST", "/v1/videos", body, headers)
        assert (code, video["status"] in ("queued", "in_progress", "completed")) == (200, True), video
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


@pytest.fixture(scope="module")
def completed(pipe, tmp_path_factory) -> Iterator[tuple[InProcessServer, str, bytes, str]]:
    """A server with one completed video: (server, its content path, its bytes, its ETag)."""
    with InProcessServer(pipe, Path(tmp_path_factory.mktemp("early")) / "data") as server:
        code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
        assert code == 200, video
        server.wait_status(video["id"], ("completed",))
        content = f"/v1/videos/{video['id']}/content"
        code, whole, headers = server.request("GET", content)
        assert code == 200
        yield server, content, whole, headers["etag"]


def head(server: InProcessServer, path: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    status, answered, body = head_request(server.port, path, headers)  # off the socket: http.client reads no body
    return status, body, answered


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"other", {tag}', '"other",{tag} , "more"', "*", " * "])
def test_if_none_match_naming_the_downloads_etag_is_304_without_a_body(completed, form):
    # The ETag was sent, but If-None-Match was ignored: a client that held the file downloaded it again (200).
    server, content, _, _ = completed
    for variant in ("", "?variant=thumbnail"):
        tag = server.request("GET", content + variant)[2]["etag"]
        if_none_match = form.format(tag=tag)
        code, data, headers = server.request("GET", content + variant, headers={"If-None-Match": if_none_match})
        assert (code, data, headers["etag"]) == (304, b"", tag), (variant, if_none_match)
        assert "content-length" not in headers and "content-range" not in headers
        code, data, headers = head(server, content + variant, {"If-None-Match": if_none_match})
        assert (code, data, headers["etag"]) == (304, b"", tag)


@pytest.mark.parametrize("form", ['"other"', '"other", W/"more"', '"{bare}"x', "{tag}-and-more"])
def test_if_none_match_naming_other_tags_is_the_whole_file(completed, form):
    server, content, whole, etag = completed
    if_none_match = form.format(tag=etag, bare=etag.strip('"'))
    code, data, headers = server.request("GET", content, headers={"If-None-Match": if_none_match})
    assert (code, data == whole, headers["etag"]) == (200, True, etag)  # not the bytes: pytest's diff of a video


def test_if_none_match_is_evaluated_before_range(completed):
    # RFC 9110 13.2.2: If-None-Match before Range; a matching tag is a 304 even for a range outside the file.
    server, content, whole, etag = completed
    for ranged in ("bytes=0-9", f"bytes={len(whole)}-"):
        code, data, headers = server.request("GET", content, headers={"If-None-Match": etag, "Range": ranged})
        assert (code, data, headers["etag"]) == (304, b"", etag), ranged
        assert "content-range" not in headers
    code, data, headers = server.request("GET", content, headers={"If-None-Match": '"other"', "Range": "bytes=0-9"})
    assert (code, data, headers["content-range"]) == (206, whole[:10], f"bytes 0-9/{len(whole)}")
    past_the_end = {"If-None-Match": '"other"', "Range": f"bytes={len(whole)}-"}
    code, error, _ = server.request("GET", content, headers=past_the_end)
    assert (code, error["error"]["code"]) == (416, "range_not_satisfiable")


def test_a_queue_that_fills_while_a_body_is_read_is_still_429(pipe, tmp_path):
    # The check before the body is read does not replace the one as the job is queued. `Expect: 100-continue`
    # makes the moment exact: the server says `100 Continue` only once the route has begun to read the body.
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        body, _ = multipart({"prompt": PROMPT, **{key: str(value) for key, value in TINY.items()}}, {})
        sock = start_upload(server.port, "/v1/videos", len(body), b"", "Expect: 100-continue\r\n")
        try:
            reader = sock.makefile("rb")
            assert reader.readline().split()[1] == b"100" and reader.readline() == b"\r\n"
            code, long_job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})  # the last place
            assert code == 200, long_job
            sock.sendall(body)
            response = http.client.HTTPResponse(sock)
            response.begin()
            error = json.loads(response.read())
            assert (response.status, error["error"]["code"], response.getheader("retry-after")) == (429, "queue_full",
                                                                                                     "30")  # fmt: skip
        finally:
            sock.close()
        assert server.request("DELETE", f"/v1/videos/{long_job['id']}")[0] == 200


def http_dates(seconds: int) -> list[str]:
    """`seconds` as each form of RFC 9110's HTTP-date: IMF-fixdate, RFC 850 and asctime."""
    moment = time.gmtime(seconds)
    return [time.strftime(form, moment) for form in ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                                     "%a %b %e %H:%M:%S %Y")]  # fmt: skip


def test_if_modified_since_its_last_modified_or_later_is_304(completed):
    # Downloads sent Last-Modified, but If-Modified-Since (a browser's cache, curl -z) was ignored: 200 and the file.
    server, content, _, etag = completed
    for variant in ("", "?variant=thumbnail"):
        tag, last_modified = (server.request("GET", content + variant)[2][name] for name in ("etag", "last-modified"))
        seconds = calendar.timegm(email.utils.parsedate(last_modified))
        # The header as sent (the file's time has fractions of a second, which it leaves out), in each form, later.
        for since in (last_modified, *http_dates(seconds), *http_dates(seconds + 86400)):
            code, data, headers = server.request("GET", content + variant, headers={"If-Modified-Since": since})
            assert (code, data, headers["etag"]) == (304, b"", tag), (variant, since)
            code, data, _ = head(server, content + variant, {"If-Modified-Since": since})
            assert (code, data) == (304, b""), (variant, since)
    code, data, _ = server.request("GET", content, headers={"If-Modified-Since": last_modified, "Range": "bytes=0-9"})
    assert (code, data) == (304, b"")  # evaluated before Range, as If-None-Match is


@pytest.mark.parametrize("since", ["earlier", "yesterday", "not a date", "{date}, {date}", "{date_without_zone}"])
def test_if_modified_since_earlier_or_not_a_date_is_the_whole_file(completed, since):
    server, content, whole, _ = completed
    last_modified = server.request("GET", content)[2]["last-modified"]
    seconds = calendar.timegm(email.utils.parsedate(last_modified))
    value = http_dates(seconds - 1)[0] if since == "earlier" else since
    value = value.format(date=last_modified, date_without_zone=last_modified.removesuffix(" GMT"))
    code, data, _ = server.request("GET", content, headers={"If-Modified-Since": value})
    assert (code, data == whole) == (200, True), value


def test_if_none_match_takes_precedence_over_if_modified_since(completed):
    # RFC 9110 13.1.3: with an If-None-Match, If-Modified-Since is ignored; a tag that does not match is the file.
    server, content, whole, etag = completed
    last_modified = server.request("GET", content)[2]["last-modified"]
    both = {"If-None-Match": '"other"', "If-Modified-Since": last_modified}
    code, data, _ = server.request("GET", content, headers=both)
    assert (code, data == whole) == (200, True)
    earlier = http_dates(calendar.timegm(email.utils.parsedate(last_modified)) - 60)[0]
    code, data, _ = server.request("GET", content, headers={"If-None-Match": etag, "If-Modified-Since": earlier})
    assert (code, data) == (304, b"")


def test_an_rfc_850_dates_two_digit_year_is_at_most_50_years_ahead():
    from motif_lite.server.downloads import http_date_seconds

    now = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc)
    year_of = {
        yy: time.gmtime(http_date_seconds(f"Monday, 01-Jan-{yy} 00:00:00 GMT", now)).tm_year for yy in ("76", "77")
    }
    assert year_of == {"76": 2076, "77": 1977}


def closed_after_answer(sock: socket.socket) -> bool:
    """Whether the server ends the connection after its answer: the next read finds the end (or a reset) within 5 s,
    rather than nothing."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_answer_before_a_long_upload_says_connection_close_and_closes_it(pipe, tmp_path):
    # The early 429 kept the connection: the server went on reading (and dropping) the whole upload it had refused,
    # and after `Expect: 100-continue` the client's next request on the connection was taken as the body (no answer).
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        code, long_job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200, long_job
        first_part, _ = multipart({"prompt": PROMPT}, {})
        early = [  # (route, expect header, the answer's status)
            ("/v1/videos", "", 429),
            ("/v1/videos/extensions", "", 429),
            ("/v1/videos/video_0123456789abcdef0123456789abcdef/remix", "", 404),  # no such source
            ("/v1/no-such-route", "", 404),
        ]
        for route, expect, status in [*early, ("/v1/videos", "Expect: 100-continue\r\n", 429)]:
            sock = start_upload(server.port, route, 50 * 1024 * 1024, first_part[:-40] if not expect else b"", expect)
            try:
                reader = sock.makefile("rb")
                status_line = reader.readline()
                headers = {}
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                assert int(status_line.split()[1]) == status, (route, status_line)
                assert headers.get("connection") == "close", (route, headers)
                reader.read(int(headers["content-length"]))
                if expect:  # a next request on the same connection: the server must not take it as the body
                    sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                assert closed_after_answer(sock), route
            finally:
                sock.close()
        assert server.request("DELETE", f"/v1/videos/{long_job['id']}")[0] == 200


def test_an_answer_before_a_short_body_keeps_the_connection_for_the_next_request(pipe, tmp_path):
    # The rest of a short body is read and dropped: a client's next request on the connection is answered.
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        code, long_job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200, long_job
        connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
        try:
            body = json.dumps({"prompt": PROMPT, **LONG}).encode()
            connection.request("POST", "/v1/videos", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert (response.status, response.getheader("connection")) == (429, None)
            response.read()
            connection.request("GET", "/health")  # on the same connection
            health = connection.getresponse()
            assert health.status == 200 and json.loads(health.read())["status"] == "ready"
        finally:
            connection.close()
        assert server.request("DELETE", f"/v1/videos/{long_job['id']}")[0] == 200


def test_a_wrong_keys_401_before_a_long_upload_closes_the_connection(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data", api_key="the-key") as server:
        first_part, _ = multipart({"prompt": PROMPT}, {})
        sock = start_upload(server.port, "/v1/videos", 50 * 1024 * 1024, first_part[:-40])
        try:
            reader = sock.makefile("rb")
            assert reader.readline().split()[1] == b"401"
            headers = [line.lower() for line in iter(reader.readline, b"\r\n")]
            assert b"connection: close\r\n" in headers, headers
        finally:
            sock.close()


MiB = 1024 * 1024


@pytest.fixture(scope="module")
def keyed(pipe, tmp_path_factory) -> Iterator[InProcessServer]:
    """A server with an API key: a request without it gets its 401 before its body is read."""
    with InProcessServer(pipe, Path(tmp_path_factory.mktemp("keyed")) / "data", api_key="the-key") as server:
        yield server


def post_whole(port: int, body: bytes, headers: dict[str, str]) -> int:
    """The status of a POST /v1/videos sent as http.client (and urllib) send one: the whole body, then the read."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", "/v1/videos", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_client_that_sends_its_whole_upload_before_reading_gets_the_early_answer(pipe, keyed, tmp_path):
    # The early answer closed the connection with the upload unread in the server's socket: the kernel reset it,
    # and http.client, still sending, raised ConnectionResetError instead of reading the 429 or 401.
    body, headers = multipart({"prompt": PROMPT}, {"input_reference": ("first.png", bytes(20 * MiB), "image/png")})
    assert post_whole(keyed.port, body, headers) == 401
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        code, long_job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200, long_job
        assert post_whole(server.port, body, headers) == 429
        assert server.request("DELETE", f"/v1/videos/{long_job['id']}")[0] == 200


def test_a_short_body_that_stalls_part_way_gets_its_answer_and_the_connection_ends(keyed):
    # The rest of a short body was awaited without a limit: a client that stalled got no answer at all.
    sock = start_upload(keyed.port, "/v1/videos", 1000, b"x" * 500)
    try:
        began = time.monotonic()
        status, _, headers = response_of(sock)
        assert (status, headers.get("connection")) == (401, "close")
        assert time.monotonic() - began < 5
        assert closed_after_answer(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("size, keeps", [(MiB, True), (MiB + 1, False)])
def test_an_early_answer_keeps_the_connection_after_a_body_of_up_to_1_mib(keyed, size, keeps):
    sock = start_upload(keyed.port, "/v1/videos", size, b"x" * size)
    try:
        status, _, headers = response_of(sock)
        assert (status, headers.get("connection")) == (401, None if keeps else "close")
        if keeps:  # the next request on the same connection is answered
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            assert response_of(sock)[0] == 200
        else:
            assert closed_after_answer(sock)
    finally:
        sock.close()


def test_an_early_answer_before_a_long_chunked_body_closes_the_connection(keyed):
    # A chunked body declares no length: over 1 MiB of it is not read to its end either.
    sock = socket.create_connection((HOST, keyed.port), timeout=15)
    try:
        head = f"POST /v1/videos HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n" % (64 * 1024) + b"x" * (64 * 1024) + b"\r\n"
        sock.sendall(chunk * 80 + b"0\r\n\r\n")  # 5 MiB
        status, _, headers = response_of(sock)
        assert (status, headers.get("connection")) == (401, "close")
        assert closed_after_answer(sock)
    finally:
        sock.close()


def test_a_stop_ends_the_lingering_close_after_an_early_answer_at_once(pipe, tmp_path):
    # After an early answer the server reads and drops what the client goes on sending, for up to 2 s, before the
    # connection ends (`CloseAfterUnreadBody.LINGER_SECONDS`): a stop (SIGTERM, Ctrl-C) waited for that, 2-3 s in
    # all, before the process could exit. The connection ends anyway: a stop ends the lingering at once.
    server = InProcessServer(pipe, tmp_path / "data", api_key="the-key")
    with server:
        first_part, _ = multipart({"prompt": PROMPT}, {})
        sock = start_upload(server.port, "/v1/videos", 50 * MiB, first_part[:-40])
        sending = threading.Event()

        def keep_sending() -> None:  # well under the 128 MiB a lingering close reads: it would go on for 2 s
            with contextlib.suppress(OSError):
                while sending.is_set():
                    sock.sendall(b"x" * 16 * 1024)
                    time.sleep(0.01)

        sender = threading.Thread(target=keep_sending, daemon=True)
        try:
            assert response_of(sock)[0] == 401  # the answer is out whole; its connection's end lingers
            sending.set()
            sender.start()
            began = time.monotonic()
            server.server.stop()
            server.thread.join(timeout=30)
            took = time.monotonic() - began
        finally:
            sending.clear()
            sender.join(timeout=30)
            sock.close()
    assert took < 1.0, f"the stop took {took:.2f} s"


def answered_early(headers: dict[bytes, bytes], parts: list[bytes], read_first: int = 0) -> list[tuple[dict, int]]:
    """The messages `CloseAfterUnreadBody` sends for an app that answers 401 after reading `read_first` of the parts
    of a request's body, which arrives as `parts` (at once, each a message), each with the count of parts not read
    yet when it was sent. After the parts the client sends nothing more."""
    import asyncio

    from motif_lite.server.unread_body import CloseAfterUnreadBody

    unread = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1} for index, part in enumerate(parts)
    ]
    sent = []

    async def receive() -> dict:
        await asyncio.sleep(0)  # as a server's receive: the event loop runs between messages
        if unread:
            return unread.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("the client sends nothing more")

    async def send(message: dict) -> None:
        sent.append((message, len(unread)))

    async def app(scope: dict, receive, send) -> None:
        for _ in range(read_first):
            await receive()
        await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"no key"})

    scope = {"type": "http", "headers": list(headers.items())}
    asyncio.run(CloseAfterUnreadBody(app)(scope, receive, send))
    return sent


def connection_header(sent: list[tuple[dict, int]]) -> bytes | None:
    start = next(message for message, _ in sent if message["type"] == "http.response.start")
    return dict(start["headers"]).get(b"connection")


def test_an_empty_body_declared_is_no_unread_body():
    # `Content-Length: 0` with `Expect: 100-continue`: there is no body to withhold the go-ahead for, and the
    # connection is kept.
    sent = answered_early({b"content-length": b"0", b"expect": b"100-continue"}, [b""])
    assert connection_header(sent) is None and sent[0][1] == 1, sent  # nothing read: the app's own answer as it is


def test_a_chunked_body_of_exactly_1_mib_is_read_to_its_end_and_the_connection_kept():
    # A chunked body says its end in a last, empty part: 1 MiB is read whole, so that part is read too.
    sent = answered_early({b"transfer-encoding": b"chunked"}, [bytes(64 * 1024)] * 16 + [b""])
    assert connection_header(sent) is None and sent[0][1] == 0, sent


def test_an_answer_after_part_of_a_body_sent_on_100_continue_reads_the_rest_and_keeps_the_connection():
    # Once the app has read part of the body, the go-ahead is sent and the client sends the rest: it is no client
    # still waiting for a `100 Continue`, and its short rest is read as any other's.
    sent = answered_early({b"content-length": b"1000", b"expect": b"100-continue"}, [b"x" * 500] * 2, read_first=1)
    assert connection_header(sent) is None and sent[0][1] == 0, sent
