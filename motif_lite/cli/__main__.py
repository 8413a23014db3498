"""`python -m motif_lite.cli ...` is `motif-lite ...`."""

import sys

from motif_lite.cli import main

sys.exit(main())
