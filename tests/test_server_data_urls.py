"""A JSON `input_reference`'s data URL (`server.schema.image_from_reference`): written the ways the usual tools and
browsers write one."""

from __future__ import annotations

import base64
import io

import numpy as np
import PIL.Image
import pytest

from motif_lite.server.schema import ApiError, image_from_reference


def _png() -> bytes:
    # Noise, so that its base64 is several 76-column lines and holds '+' and '/' (URL-safe '-' and '_').
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    PIL.Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _data_url(data: str, header: str = "data:image/png;base64") -> dict:
    return {"image_url": f"{header},{data}"}


def test_base64_wrapped_in_lines_gives_the_same_bytes():
    # GNU `base64 FILE`, `openssl base64` and Python's `base64.encodebytes` wrap at 76 columns; JSON made from their
    # output keeps the newlines (and a Windows tool's CRs). Browsers drop ASCII whitespace from a data URL.
    png = _png()
    wrapped = base64.encodebytes(png).decode()
    assert "\n" in wrapped.strip()  # more than one line
    assert image_from_reference(_data_url(wrapped)) == png
    assert image_from_reference(_data_url(wrapped.replace("\n", "\r\n"))) == png
    assert image_from_reference(_data_url(" \t" + base64.b64encode(png).decode() + "\f ")) == png


@pytest.mark.parametrize("header", ["Data:image/png;BASE64", "DATA:IMAGE/PNG;Base64", "data:image/png;base64"])
def test_the_scheme_and_the_base64_token_are_case_insensitive(header):
    # RFC 2397: the scheme, the media type and `base64` are case-insensitive.
    png = _png()
    assert image_from_reference(_data_url(base64.b64encode(png).decode(), header)) == png


def test_url_safe_base64_is_refused_naming_its_alphabet():
    url_safe = base64.urlsafe_b64encode(_png()).decode()
    assert "-" in url_safe or "_" in url_safe
    with pytest.raises(ApiError, match=r"'-' and '_' are the URL-safe alphabet; a data URL takes the standard one"):
        image_from_reference(_data_url(url_safe))
    for char in "-_":  # either one alone names the alphabet
        with pytest.raises(ApiError, match=r"'-' and '_' are the URL-safe alphabet"):
            image_from_reference(_data_url(f"iVBO{char}w0K"))
    # Other bad base64 keeps the decoder's own reason.
    with pytest.raises(ApiError, match=r"^input_reference: invalid base64 \((?!.*URL-safe)"):
        image_from_reference(_data_url("abc*"))


def test_what_is_no_base64_data_url_is_still_refused():
    for url in ("https://a.com/a.png", "data:text/plain;base64,aGk=", "data:image/png,raw"):
        with pytest.raises(ApiError, match="must be a base64 data URL; this server fetches no URLs"):
            image_from_reference({"image_url": url})
