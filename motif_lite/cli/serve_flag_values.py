"""The values `motif-lite serve`'s flags take, checked: argparse's types (--host, --port, --max-video,
--cors-origin, the upload sizes), which refuse a bad value as the flags are read, and the checks the handler makes
before anything loads (--lora-dir, --crf against the server's codec, the API key, the data folder's problem in
words).
"""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from motif_lite.choices import lines_size, split_size
from motif_lite.cli.flag_numbers import positive_number
from motif_lite.errors import MotifLiteError
from motif_lite.origins import origin_as_sent
from motif_lite.paths import user_path, user_path_kept_here
from motif_lite.request import REQUEST_DEFAULTS, SIZE_MULTIPLE

API_KEY_VARIABLE = "MOTIF_LITE_API_KEY"
MAX_PORT = 65535

# The server flags' types: argparse refuses a bad value as it reads the flags, before the port is bound.


def parse_max_video(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text.strip())
    if match is None or min(int(g) for g in match.groups()) < 1:
        raise argparse.ArgumentTypeError(f"must look like 1280x736x121 (width x height x frames), got {text!r}"
                                         f"{_max_video_meant(text)}")  # fmt: skip
    if min(int(match[1]), int(match[2])) < SIZE_MULTIPLE:  # no video is narrower: a job given no size got a 400
        raise argparse.ArgumentTypeError(
            f"must be at least {SIZE_MULTIPLE}x{SIZE_MULTIPLE} (width x height x frames), got {text!r}"
        )
    return int(match[1]), int(match[2]), int(match[3])


def _max_video_meant(text: str) -> str:
    """The --max-video a size without its frames (`1280x720`, `720p`) or with other separators (Wan's `1280*720*121`)
    most likely means, as the end of the refusal; "" when none."""
    if (size := split_size(text) or lines_size(text)) is not None:
        frames = REQUEST_DEFAULTS.frames
        return f"; with the frames too, e.g. {size[0]}x{size[1]}x{frames} ({frames} frames, the official length)"
    sides = re.fullmatch(r"\s*(\d+)\s*[x*X\u00d7,:]\s*(\d+)\s*[x*X\u00d7,:]\s*(\d+)\s*", text)
    return "" if sides is None or "0" in (sides[1], sides[2], sides[3]) else f"; written {'x'.join(sides.groups())}"


def cors_origin(text: str) -> str:
    """--cors-origin: `*` or an origin as browsers send it (scheme://host[:port]), which the CORS check compares
    exactly: one copied from the address bar with its trailing slash or path never matched, and every preflight got
    400, as one with an upper-case name, a name not in punycode, a short address (127.1) or its scheme's own port
    did (a browser sends none of them). Refused as argparse refuses a bad --port, with serve's usage."""
    if text == "*":
        return text
    as_sent = origin_as_sent(text)
    if text == as_sent:
        return text
    meant = f" (did you mean {as_sent}?)" if as_sent else ""
    # The messages write `--cors-origin '*'` for POSIX shells; cmd passes single quotes on as part of the value.
    inside = text[1:-1] if len(text) > 2 and text[0] == text[-1] == "'" else None
    if inside is not None and (unquoted := "*" if inside == "*" else origin_as_sent(inside)):
        meant = f" (did you mean {unquoted}? cmd keeps single quotes in the value: give it without them)"
    if text.strip().lower() == "null":  # what a page opened from a file or in a sandboxed frame sends
        meant = (" (null is the origin of a file opened in the browser, and of a sandboxed frame, which any site can "
                 "make: to let such a page call the server, give * with --api-key, and the page the key)")  # fmt: skip
    raise argparse.ArgumentTypeError(
        f"must be an origin as a browser sends it, scheme://host[:port] without a path or trailing "
        f"slash, e.g. https://app.example.com, or * for any; got {text!r}{meant}"
    )


def host_name(text: str) -> str:
    """A name the resolver can look up: it encodes the name (IDNA) first, and one it cannot encode (a lone surrogate
    from a terminal in another encoding, an empty label as in a..b) raised a UnicodeError traceback. A URL or an
    address with its port (`http://0.0.0.0:8188`, `localhost:8080`, as other servers' docs write them) is told the
    flags to give: the resolver only said "Name or service not known"."""
    examples = "give e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every address of this machine)"
    address, port = _address_and_port(text)
    if address != text:
        flags = f"--host {address}" + (f" --port {port}" if port is not None else "") if address else examples
        raise argparse.ArgumentTypeError(f"takes an address alone (no http://, no :port), got {text!r}: {flags}")
    try:
        text.encode("idna")
    except UnicodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address: {examples}") from None
    return text


def _address_and_port(text: str) -> tuple[str, int | None]:
    """The address and the port in a URL (`http://0.0.0.0:8188/`) or in `host:port` (`[::1]:8080` for IPv6); `text`
    and None when it is neither (an IPv6 address alone, `::1`, has colons but no port)."""
    if "://" not in text and re.fullmatch(r"(\[[^\]]*\]|[^:]*):\d+", text) is None:
        return text, None
    try:
        parts = urllib.parse.urlsplit(text if "://" in text else f"//{text}")
        address = parts.hostname or ""
    except ValueError:  # an unbalanced bracket: a URL names no address to give; else the resolver's message follows
        return ("" if "://" in text else text), None
    try:
        return address, parts.port
    except ValueError:  # a port out of range: the address alone is still worth naming
        return address, None


def port_number(text: str) -> int:
    """0-65535: the resolver would take 99999 as 99999 % 65536 and start the server elsewhere without a word."""
    try:
        port = int(text)
    except ValueError:
        port = None
    if port is None or not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be 0-{MAX_PORT} (0 = any free port), got {text}")
    return port


def positive_mib(text: str) -> float:
    return positive_number(text, "MiB", text)


MIN_VIDEO_UPLOAD_MB, MAX_VIDEO_UPLOAD_MB = 1, 4096


def video_upload_mib(text: str) -> float:
    """--max-video-upload-mb: under 1 MiB no clip worth extending fits; over 4 GiB a single request would fill a
    disk (the upload is spooled to a temporary file, then copied into the data folder)."""
    value = positive_mib(text)
    if not MIN_VIDEO_UPLOAD_MB <= value <= MAX_VIDEO_UPLOAD_MB:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_VIDEO_UPLOAD_MB} to {MAX_VIDEO_UPLOAD_MB} MiB (a 5-second 720p clip is a few MiB), got "
            f"{text}"
        )
    return value


# The checks of the handler, before anything loads.


def lora_folder(value: str | None) -> Path | None:
    """`--lora-dir`, checked to be a folder before anything loads. `./~` is a folder named `~` here, kept absolute:
    pathlib drops the `./`, and what is left would print as the home folder and be read again as it (`user_path`)."""
    if value is None:
        return None
    folder = user_path_kept_here(value)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MotifLiteError(f"--lora-dir {value} {what}: give it the folder of the LoRA files jobs may name")
    return folder


def check_server_crf(crf: int | None) -> None:
    """`--crf` against the codec of the videos the server writes (H.264: 0-51; the parser took VP9's 0-63)."""
    from motif_lite.io.video import check_crf
    from motif_lite.server.jobs import VIDEO_SUFFIX

    try:
        check_crf(f"video{VIDEO_SUFFIX}", crf)
    except MotifLiteError as exc:
        raise MotifLiteError(f"--crf {crf}: the server writes every video as {VIDEO_SUFFIX}, and {exc}") from None


def api_key_from(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The key of `--api-key`, else of $MOTIF_LITE_API_KEY, without surrounding blanks (the server compares it with
    the stripped token of each request); None without either. An empty one is an error: it served without a key,
    without a word (`--api-key "$KEY"` with KEY unset)."""
    for source, value in (("--api-key", flag), (f"${API_KEY_VARIABLE}", environ.get(API_KEY_VARIABLE))):
        if value is None:
            continue
        if not value.strip():
            raise MotifLiteError(
                f"{source} is empty (an unset shell variable?): give it a key, or leave it out (unset "
                f"{API_KEY_VARIABLE}) to serve without one"
            )
        # A client sends the key in a header: the SDK and browsers refuse any other character there, and curl's
        # UTF-8 bytes would never match it (the server reads a header as Latin-1).
        if not all(" " <= char <= "~" for char in value.strip()):
            raise MotifLiteError(
                f"{source} has a character other than printable ASCII (letters, digits, punctuation, spaces), which "
                "no client can send in its Authorization header: give a key such as the output of "
                "`openssl rand -hex 32`"
            )
        return value.strip()
    return None


def data_folder_problem(data: str, error: Exception) -> str:
    """Why `--data` cannot be opened, in words: a file where the folder (or a folder above it) should be is named
    as such, not as the OS's "File exists" / "Not a directory"."""
    folder = user_path(data)
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        where = f"--data {data} is" if existing == folder else f"--data {data}: {existing} is"
        return (
            f"{where} a file, not a folder; give --data a folder for the job database and the videos (it is "
            "created if missing)"
        )
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error  # not "[Errno 30] ...: path"
    return f"cannot use the data folder {data}: {reason}; give --data a folder you can write to"
