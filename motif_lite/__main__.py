"""`python -m motif_lite ...` is `motif-lite ...` (also what `torchrun -m motif_lite` starts)."""

import sys

from motif_lite.cli import main

sys.exit(main())
