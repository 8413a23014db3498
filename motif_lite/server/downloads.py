"""A finished job's file as its download: the whole file, or the byte ranges a `Range` header asks for.

Starlette's `FileResponse` answers a `Range` header it cannot use (another unit than `bytes`, a malformed range, one
past the end) with a plain-text error, not the API's JSON. RFC 9110 (section 14.2) says a server MUST ignore a Range
in a unit it does not know, and MAY ignore an invalid one: both get the whole file here, as nginx answers them. A
range set none of whose ranges is in the file is the API's 416 with the file's size, as the RFC's 416 says. The file
is looked up (`os.stat`) before the answer starts: a file deleted since the job was read is the API's 404.

A request whose `If-None-Match` names the file's ETag (or is `*`) gets 304 Not Modified and no body: the copy the
client holds is this file. Starlette's `FileResponse` sends the ETag but ignores the header. As RFC 9110 (13.2.2)
orders the preconditions, it is evaluated before Range: a matching tag is a 304 even where the range would be 416.
Without an If-None-Match (which takes precedence), an If-Modified-Since no earlier than the file's Last-Modified, in
whole seconds as that header gives it, is a 304 too (13.1.3), as a browser's cache and `curl -z` ask; a value that
is not an HTTP-date is ignored.
"""

from __future__ import annotations

import calendar
import datetime
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


# RFC 9110's HTTP-date (5.6.7): the IMF-fixdate servers send, and the obsolete RFC 850 and asctime forms, which a
# recipient must take too.
IMF_FIXDATE = "%a, %d %b %Y %H:%M:%S GMT"
RFC_850_DATE = "%A, %d-%b-%y %H:%M:%S GMT"
ASCTIME_DATE = "%a %b %d %H:%M:%S %Y"


def http_date_seconds(text: str, now: datetime.datetime | None = None) -> int | None:
    """The seconds since the epoch of an HTTP-date, None for any other text. An RFC 850 date's two-digit year is the
    latest year ending in those digits that is at most 50 years after `now` (RFC 9110 5.6.7)."""
    for form in (IMF_FIXDATE, RFC_850_DATE, ASCTIME_DATE):
        try:
            parsed = datetime.datetime.strptime(text.strip(), form)
        except ValueError:
            continue
        if form == RFC_850_DATE:
            this_year = (now or datetime.datetime.now(datetime.timezone.utc)).year
            year = this_year - this_year % 100 + parsed.year % 100
            parsed = parsed.replace(year=year - 100 if year > this_year + 50 else year)
        return calendar.timegm(parsed.timetuple())
    return None


def not_modified_since(if_modified_since: str, modified: float) -> bool:
    """Whether a file last modified at `modified` (seconds since the epoch) is unchanged since an If-Modified-Since
    header's date: compared in whole seconds, as its Last-Modified says it; False for a value that is no date."""
    since = http_date_seconds(if_modified_since)
    return since is not None and int(modified) <= since


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
    """The download of `path` for a request with `headers` (304 where its If-None-Match names the file, or, without
    one, where its If-Modified-Since is no earlier than the file's Last-Modified), or the API's 404 saying `missing`
    (not the path) where the file is gone: deleted with its job since the job was read."""
    try:
        stat_result = await run_in_threadpool(os.stat, path)
    except FileNotFoundError:
        raise ApiError(404, missing, None, "not_found") from None
    if not stat.S_ISREG(stat_result.st_mode):
        raise ApiError(404, missing, None, "not_found")
    response = Download(path, None, stat_result, **options)
    etag = response.headers["etag"]
    if_none_match, if_modified_since = headers.get("if-none-match"), headers.get("if-modified-since")
    if if_none_match is not None:
        not_modified = etag_matches(if_none_match, etag)
    else:
        not_modified = if_modified_since is not None and not_modified_since(if_modified_since, stat_result.st_mtime)
    if not_modified:
        # A 304 carries the ETag and no representation headers (RFC 9110 15.4.5); a download sends no Cache-Control.
        return Response(status_code=304, headers={"ETag": etag})
    response.range_header = ranges_to_send(headers.get("range"), stat_result.st_size, "if-range" in headers)
    return response
