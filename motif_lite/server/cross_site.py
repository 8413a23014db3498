"""What a web page of another site can make a server without a key do: nothing, where the server is on loopback.

A browser lets any page send a form or a plain-text body to any address, this machine's included, without asking the
server first (a CORS "simple request"): the page cannot read the answer, but a job is queued all the same. And a
page whose own name is made to resolve to 127.0.0.1 (DNS rebinding) becomes, to the browser, of the same origin as
a server on loopback, and reads every answer. A key stops both: such a page cannot send it. Without one, this
middleware refuses, before the body is read:

- a request that changes something (POST, PUT, PATCH, DELETE) from a page of another origin than the server's own
  (scheme://host:port as the request reached it) or those of `--cors-origin` (its `Origin` header; where a browser
  sends none, `Sec-Fetch-Site: cross-site`). curl, the SDKs and other programs send neither, and are answered as
  ever;
- on a server that listens on a loopback address, a request addressed to a name that is not a loopback one (its
  `Host` header), as a rebinding page's is; a name under localhost (`app.localhost`) and an address that reaches
  loopback (0.0.0.0, ::ffff:127.0.0.1, 127.1) are ones.

A server on another address (`--host 0.0.0.0`) answers every name, as its users on the network need, and so a
rebinding page's too, which is then of the server's own origin: there only a key keeps such a page out.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse

from motif_lite.server.schema import ApiError
from motif_lite.shell_syntax import quoted

CHANGING_METHODS = (b"POST", b"PUT", b"PATCH", b"DELETE")
DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = ("localhost",)  # besides loopback addresses (127.0.0.0/8, ::1)
LOOPBACK_DOMAIN = ".localhost"  # the names under it (RFC 6761), which browsers resolve to loopback themselves
# An IPv4 address as C's inet_aton reads it: 1 to 4 parts, each decimal, octal (a leading 0) or hex (0x).
SHORT_IPV4 = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 without brackets) is one of this machine's loopback ones."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CrossSiteGuard:
    """ASGI middleware: the refusals above, each a 403 in the API's error shape. `has_key`: whether the server asks
    for a key (then it refuses nothing here); `listening_on()`: the address the server listens on, None where unknown
    (then the address the connection reached is taken); `cors_origins`: those of `--cors-origin` (`*`: any)."""

    def __init__(
        self, app, has_key: bool, cors_origins: tuple[str, ...], listening_on: Callable[[], str | None]
    ) -> None:
        self.app = app
        self.has_key = has_key
        self.cors_origins = cors_origins
        self.listening_on = listening_on

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send) -> None:
        if scope["type"] != "http" or self.has_key:
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(error.body(), status_code=error.status)(scope, receive, send)

    def _refusal(self, scope: dict) -> ApiError | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host")
        listening = self.listening_on() or (scope.get("server") or ("",))[0]
        if host is not None and is_loopback(listening) and not _names_this_machine(_host_name(host)):
            return ApiError(
                403,
                f"this server listens on {listening} without an API key, and so answers only requests addressed to "
                "this machine by a loopback name (localhost or a name under it, 127.0.0.1, [::1], 0.0.0.0); this one "
                f"was addressed to {host!r}, as a web page that points its own name at this machine (DNS rebinding) "
                "would send. To reach the server by another name, start it with --api-key (a server with a key "
                "answers any name), or have the proxy in front of it send Host: 127.0.0.1 (nginx does by default)",
                None,
                "host_not_allowed",
            )
        if scope["method"].encode() not in CHANGING_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None:
            if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
                return _cross_origin("a page of another site (Sec-Fetch-Site: cross-site)")
            return None  # curl, an SDK, a program: not a browser's page
        if "*" in self.cors_origins or origin in self.cors_origins or _same_origin(origin, scope["scheme"], host):
            return None
        if origin == "null":
            return _no_origin()
        return _cross_origin(f"a page of {origin}")


def _cross_origin(sender: str) -> ApiError:
    return ApiError(
        403,
        f"{sender} may not start work or change anything on this server, which has no API key: a page of any site "
        "can send a form to it. Start the server with --cors-origin ORIGIN to let pages of ORIGIN call it (behind a "
        "reverse proxy that sends its own Host, the origin the page is served from), or with --api-key, which such a "
        "page cannot send; curl and the SDKs send no Origin and are not refused",
        None,
        "cross_origin_refused",
    )


def _no_origin() -> ApiError:
    """The refusal of a page of origin `null`, whose own advice differs: serve refuses `--cors-origin null` (any site
    can make a sandboxed frame that sends it), and so the other refusal's flag would not let such a page in."""
    # The `*` is quoted for this machine's shell: cmd kept POSIX single quotes in the value, which serve refuses.
    return ApiError(
        403,
        "a page without an origin of its own (Origin: null: a file opened in the browser, or a sandboxed frame, which "
        "any site can make) may not start work or change anything on this server, which has no API key. Serve the "
        "page from a web server and start this one with --cors-origin and that server's origin (e.g. --cors-origin "
        f"http://localhost:3000), or start it with --api-key and --cors-origin {quoted('*')} (the page then sends the "
        "key); curl and the SDKs send no Origin and are not refused",
        None,
        "cross_origin_refused",
    )


def _same_origin(origin: str, scheme: str, host: str | None) -> bool:
    """Whether `origin` (as a browser sends it) is the server's own as the request reached it: `scheme` and the
    `Host` header, a default port left out or not."""
    if host is None:
        return False
    try:
        page = urllib.parse.urlsplit(origin)
        server = urllib.parse.urlsplit(f"//{host}")
        page_port, server_port = page.port, server.port  # ValueError for a port that is not one
    except ValueError:
        return False
    if page.scheme.lower() != scheme or page.hostname is None or page.hostname != server.hostname:
        return False
    return (page_port or DEFAULT_PORTS.get(scheme)) == (server_port or DEFAULT_PORTS.get(scheme))


def _names_this_machine(name: str) -> bool:
    """Whether `name` (a `Host` header's, without its port) reaches this machine alone, and so is no rebinding
    page's, which needs a name its owner can point at 127.0.0.1. With or without a trailing dot:

    - a loopback name or address, or a name under `localhost` (`app.localhost`): RFC 6761 keeps those for loopback,
      browsers resolve them so without asking DNS, and no public DNS zone holds them;
    - the unspecified address (0.0.0.0, ::), a connection to which goes to loopback (`curl http://0.0.0.0:8080/`);
    - such an IPv4 address inside an IPv6 one (`::ffff:127.0.0.1`), or written short as C's inet_aton reads it
      (`127.1`, `0x7f.1`): a browser sends these as 127.0.0.1, and never asks DNS for a name whose last label is a
      number, so only a program sends them, as typed.
    """
    name = name.rstrip(".").lower()
    if is_loopback(name) or name.endswith(LOOPBACK_DOMAIN):
        return True
    address = _address(name)
    return address is not None and (address.is_loopback or address.is_unspecified)


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `name` writes (an IPv4 one inside IPv6 as the IPv4 one), None where it writes none."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        if not SHORT_IPV4.fullmatch(name):  # inet_aton alone takes text after a space in some C libraries
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:  # a part too large, or an octal one with an 8 or 9
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _host_name(host: str) -> str:
    """The name or address of a `Host` header, without its port or an IPv6 address's brackets."""
    try:
        return urllib.parse.urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""
