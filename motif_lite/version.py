"""motif-lite's version: one place, read by the package (`motif_lite.__version__`), its build (pyproject.toml), the
server's `/health` and the settings a video stores. Raised with each release, not each commit: the notes on files
another version wrote (docs/usage.md, "After an upgrade") tell releases apart, not commits."""

VERSION = "0.1.0"
