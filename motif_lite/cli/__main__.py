"""`python -m motif_lite.cli ...` is `motif-lite ...`."""

from motif_lite.cli import entry

entry()
