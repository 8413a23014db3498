"""motif-lite's version: one place, read by the package (`motif_lite.__version__`), its build (pyproject.toml), the
server's `/health` and the settings a video stores."""

VERSION = "0.1.0"
