"""A finished job's file as its download: the whole file, or the byte ranges a `Range` header asks for.

Starlette's `FileResponse` answers a `Range` header it cannot use (another unit than `bytes`, a malformed range, one
past the end) with a plain-text error, not the API's JSON. RFC 9110 (section 14.2) says a server MUST ignore a Range
in a unit it does not know, and MAY ignore an invalid one: both get the whole file here, as nginx answers them. A
range set none of whose ranges is in the file is the API's 416 with the file's size, as the RFC's 416 says. The file
is looked up (`os.stat`) before the answer starts: a file deleted since the job was read is the API's 404.

A request whose `If-None-Match` names the file's ETag (or is `*`) gets 304 Not Modified and no body: the copy the
client holds is this file. Starlette's `FileResponse` sends the ETag but ignores the header. As RFC 9110 (13.2.2)
orders the preconditions, it is evaluated before Range: a matching tag is a 304 even where the range would be 416.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from motif_lite.server.schema import ApiError

# RFC 9110's int-range (`first-last`, `first-`) and suffix-range (`-length`), spaces allowed around each.
INT_RANGE = re.compile(r"\s*(\d+)-(\d*)\s*")
SUFFIX_RANGE = re.compile(r"\s*-(\d+)\s*")


def ranges_to_send(header: str | None, size: int, if_range: bool = False) -> str | None:
    """The Range header to answer for a file of `size` bytes: the ranges of `header` that are in the file, or None
    for the whole file (no header, another unit, a malformed range set); raises the API's 416 where none is in it,
    unless the request has an If-Range (`if_range`): a changed file then gets the whole file, not a 416, and the
    whole file is also a right answer to an unchanged one (a server may ignore any Range)."""
    if header is None:
        return None
    unit, equals, range_set = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [spec for spec in range_set.split(",") if spec.strip()]  # the list rule allows empty elements
    if not specs:
        return None
    satisfiable = []
    for spec in specs:
        if (int_range := INT_RANGE.fullmatch(spec)) is not None:
            first, last = int_range.group(1), int_range.group(2)
            if last and int(last) < int(first):
                return None  # invalid: the whole range set is ignored
            if int(first) < size:
                satisfiable.append(spec.strip())
        elif (suffix := SUFFIX_RANGE.fullmatch(spec)) is not None:
            if int(suffix.group(1)) > 0 and size > 0:
                satisfiable.append(spec.strip())
        else:
            return None
    if not satisfiable:
        if if_range:
            return None
        raise ApiError(416, f"the range asked for is not in the file, whose size is {size} bytes", None,
                       "range_not_satisfiable", headers={"Content-Range": f"bytes */{size}"})  # fmt: skip
    return "bytes=" + ",".join(satisfiable)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag`: `*`, or a tag of its list equal to it by RFC 9110's weak
    comparison (a `W/` prefix on either side does not count)."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class Download(FileResponse):
    """A `FileResponse` that answers `range` (from `ranges_to_send`) instead of the request's own Range header."""

    def __init__(self, path: Path, range_header: str | None, stat_result: os.stat_result, **options: str) -> None:
        super().__init__(path, stat_result=stat_result, **options)
        self.range_header = range_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name != b"range"]
        if self.range_header is not None:
            headers.append((b"range", self.range_header.encode("latin-1")))
        await super().__call__({**scope, "headers": headers}, receive, send)


async def download(path: Path, headers: Headers, missing: str, **options: str) -> Response:
    """The download of `path` for a request with `headers` (304 where its If-None-Match names the file), or the API's
    404 saying `missing` (not the path) where the file is gone: deleted with its job since the job was read."""
    try:
        stat_result = await run_in_threadpool(os.stat, path)
    except FileNotFoundError:
        raise ApiError(404, missing, None, "not_found") from None
    if not stat.S_ISREG(stat_result.st_mode):
        raise ApiError(404, missing, None, "not_found")
    response = Download(path, None, stat_result, **options)
    etag = response.headers["etag"]
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        # A 304 carries the ETag and no representation headers (RFC 9110 15.4.5); a download sends no Cache-Control.
        return Response(status_code=304, headers={"ETag": etag})
    response.range_header = ranges_to_send(headers.get("range"), stat_result.st_size, "if-range" in headers)
    return response
