"""`python -m motif_lite.quantize`."""

import sys

from motif_lite.stopping import EXIT_INTERRUPTED, exit_with  # a small module: no torch yet

try:
    from .cli import entry
except KeyboardInterrupt:  # Ctrl-C while torch loads (seconds): the quantizer's one line for it, not a traceback
    print("\ninterrupted: nothing was written", file=sys.stderr)
    exit_with(EXIT_INTERRUPTED)  # as a later Ctrl-C exits

entry()
