"""`python -m motif_lite.cli ...` is `motif-lite ...`."""

import sys

from motif_lite.cli import EXIT_USER_ERROR, main
from motif_lite.cli.unknown_flags import other_command

# `quantize` / `convert` (what stable-diffusion.cpp and llama.cpp users type) are a program of their own here;
# argparse alone would answer "invalid choice" with the list of subcommands.
if (hint := other_command(sys.argv[1:])) is not None:
    print(hint, file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
sys.exit(main())
