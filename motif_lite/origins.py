"""Web origins as a browser writes them (scheme://host[:port]): what serve's --cors-origin takes, and what the
server's CORS refusal advises giving it. Here, not in `motif_lite.cli.serve` or `motif_lite.server`: the server
package does not import the command line, and the command line reads its flags without the `server` extra."""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
import urllib.parse

DEFAULT_PORTS = {"http": 80, "https": 443}  # those a browser leaves out of an origin


def origin_as_sent(text: str) -> str | None:
    """The origin a browser sends for the address `text` (its name in lower case and ASCII, an address as
    `_host_as_sent` writes it, no default port, no path), or None where `text` names no host, or a port or an
    address that is not one."""
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    # http's and https's hosts are parsed by the browser (WHATWG URL); another scheme's (an extension's) are kept.
    host = _host_as_sent(parts.hostname) if parts.scheme in DEFAULT_PORTS else _bracketed(parts.hostname)
    if host is None:
        return None
    shown_port = "" if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    return f"{parts.scheme}://{host}{shown_port}"


_NUMBER = "(0x[0-9a-f]*|[0-9]+)"  # a part of an IPv4 address as a browser reads it: decimal, octal (0...) or hex


def _host_as_sent(name: str) -> str | None:
    """`name` (in lower case, as urlsplit gives it) as a browser writes it in an origin (the WHATWG URL standard's
    host serializer), or None where a browser takes it for an IPv4 address that is not one (`1.2.3.999`). A name's
    labels in other scripts go in punycode (`bücher.example` is sent as `xn--bcher-kva.example`); an IPv4 address
    in four decimal parts (`127.1` is 127.0.0.1); an IPv6 one in brackets, its longest run of zeros written `::`."""
    if ":" in name:
        try:
            return f"[{_ipv6_as_sent(ipaddress.IPv6Address(name))}]"
        except ValueError:
            return _bracketed(name)
    # A browser decodes a name's percent escapes and maps it (UTS 46) before anything else: full-width letters and
    # digits and other compatibility forms (an input method's `ｅｘａｍｐｌｅ`, `ⓐ`) are their plain ones, and the
    # ideographic full stop `。` is a dot. `b%C3%BCcher.example` was taken, and `bücher。example` was told a
    # punycode name of one label, neither of which a browser sends.
    name = unicodedata.normalize("NFKC", urllib.parse.unquote(name)).replace("\u3002", ".").lower()
    address = name.removesuffix(".")
    if re.fullmatch(_NUMBER, address.rsplit(".", 1)[-1]):  # a browser reads it as an IPv4 address, or refuses it
        if not re.fullmatch(rf"{_NUMBER}(\.{_NUMBER}){{0,3}}", address):
            return None
        try:
            return socket.inet_ntoa(socket.inet_aton(address))
        except OSError:  # a part too large, or an octal one with an 8 or 9
            return None
    labels = [unicodedata.normalize("NFC", label) for label in name.split(".")]
    return ".".join(label if label.isascii() else "xn--" + label.encode("punycode").decode() for label in labels)


def _bracketed(name: str) -> str:
    """`name` as a URL writes it: an IPv6 address in brackets."""
    return f"[{name}]" if ":" in name else name


def _ipv6_as_sent(address: ipaddress.IPv6Address) -> str:
    """`address` as a browser writes it: its eight parts in lower-case hex, the first longest run of two or more
    zero parts as `::`, and no IPv4 form for the last two (Python 3.13 writes `::ffff:127.0.0.1`)."""
    parts = [int.from_bytes(address.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    start, length = 0, 0
    for i in range(8):
        run = next((j for j in range(i, 8) if parts[j] != 0), 8) - i
        if run > length and run >= 2:
            start, length = i, run
    hexes = [f"{part:x}" for part in parts]
    if not length:
        return ":".join(hexes)
    return ":".join(hexes[:start]) + "::" + ":".join(hexes[start + length :])
