"""Paths as users type them."""

from __future__ import annotations

import os
from pathlib import Path

from motif_lite.errors import MotifLiteError


def user_path(value: str | os.PathLike) -> Path:
    """`value` as a path with a leading `~` or `~user` expanded, as a shell would have (a quoted path, a config file
    or a notebook reach us unexpanded). A `~name` for which this machine has no home (`~Downloads/model`, a slash
    left out) is a `MotifLiteError` saying so, where pathlib raises a bare RuntimeError."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        user = Path(value).parts[0]
        raise MotifLiteError(
            f"{value}: {user} names the home folder of a user {user[1:]!r}, and this machine has none; give the path "
            f"in full (or ~/{str(value)[1:]} for one in your home)"
        ) from None
