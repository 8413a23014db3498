"""CORS for `--cors-origin`: Starlette's middleware, with a refused preflight answered in the API's JSON shape.

Starlette refused a preflight with a plain-text 400 ("Disallowed CORS origin"): the one answer of the server that
was not an error object, and it named neither the origin the server takes nor the flag that adds one. A browser
shows its script no preflight's body either way; the message is for whoever reads it with curl or the browser's
network panel.

A page of an origin the server allows may also reach it on a private address: Chrome's Private Network Access asks
so in the preflight (`Access-Control-Request-Private-Network: true`) when a public page calls a server on this
machine or the local network, and sends the call only if the answer says `Access-Control-Allow-Private-Network:
true`. Such a preflight was refused, with no way out but to serve the page from a private address; the operator who
names an origin with `--cors-origin` means its pages to call the server, wherever it is.
"""

from __future__ import annotations

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from motif_lite.origins import origin_as_sent
from motif_lite.server.schema import ApiError
from motif_lite.shell_syntax import quoted


class ApiCors(CORSMiddleware):
    """`CORSMiddleware` whose refused preflight is a 400 `cors_not_allowed` saying what was refused and why, and
    which grants the origins it allows private-network access."""

    def __init__(self, app, allow_origins: list[str], **options) -> None:
        super().__init__(app, allow_origins=allow_origins, allow_private_network=True, **options)
        self.origins_named = tuple(allow_origins)  # as the operator gave them, for the message

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        error = ApiError(400, self._refusal(request_headers), None, "cors_not_allowed")
        # Starlette's CORS headers, without its plain text's length and type, nor the private-network grant it makes
        # whatever the origin (a refused preflight grants nothing).
        kept = ("access-control-", "vary")
        headers = {name: value for name, value in response.headers.items()
                   if name.startswith(kept) and name != "access-control-allow-private-network"}  # fmt: skip
        return JSONResponse(error.body(), status_code=400, headers=headers)

    def _refusal(self, request_headers: Headers) -> str:
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        reasons = []
        if not self.is_allowed_origin(origin=origin):
            # In the shell's quotes: zsh refused `--cors-origin http://[::1]:8080` bare, a pattern matching no file.
            # serve refuses `null` (any site can make a sandboxed frame that sends it): such a page is let in by `*`
            # with a key, as the 403 to it says (`cross_site`). Another origin is advised as serve takes it (as a
            # browser sends it): `http://localhost:3000/` from curl was advised as typed, which serve refuses.
            meant = origin_as_sent(origin)
            if origin == "null":
                add = (
                    f"null, which a file opened in the browser and any site's sandboxed frame send, is no origin "
                    f"serve takes: to let such a page call it, start it with --api-key and --cors-origin "
                    f"{quoted('*')}, and give the page the key"
                )
            elif origin == "*":  # curl's `-H 'Origin: *'`: "* is no origin serve takes" though --cors-origin takes it
                add = (
                    "a browser never sends *, only its page's origin, scheme://host[:port]: send the Origin of the "
                    "page that will call it (to let pages of every origin call it, start it with --cors-origin "
                    f"{quoted('*')})"
                )
            elif meant is None:
                add = f"{origin} is no origin serve takes: a browser sends scheme://host[:port]"
            elif meant in self.allow_origins:  # curl's `http://localhost:3000/`: adding it again would change nothing
                add = (
                    f"a browser sends it as {meant}, which this server takes: send the Origin header as a browser "
                    "writes it"
                )
            else:
                as_sent = "" if meant == origin else f", which a browser sends as {meant}"
                add = f"start it with --cors-origin {quoted(meant)} to add that origin{as_sent}"
            reasons.append(
                f"pages of {origin} may not call this server, which takes calls from pages of "
                f"{', '.join(self.origins_named)} only ({add})"
            )
        if method not in self.allow_methods:
            reasons.append(f"{method} is no method of this API (it takes {', '.join(self.allow_methods)})")
        asked = request_headers.get("access-control-request-headers")
        names = [] if asked is None or self.allow_all_headers else [name.strip() for name in asked.lower().split(",")]
        if refused := [name for name in names if name not in self.allow_headers]:  # Starlette's check, as it makes it
            reasons.append("the page asks to send headers this server does not take (Access-Control-Request-Headers): "
                           f"{', '.join(map(repr, refused))}")  # fmt: skip
        return "CORS preflight refused: " + "; ".join(reasons)
