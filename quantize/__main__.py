"""`python -m motif_lite.quantize`."""

import sys

try:
    from .cli import entry
except KeyboardInterrupt:  # Ctrl-C while torch loads (seconds): the quantizer's one line for it, not a traceback
    print("\ninterrupted: nothing was written", file=sys.stderr)
    sys.exit(130)  # cli.EXIT_INTERRUPTED, as a later Ctrl-C exits

entry()
