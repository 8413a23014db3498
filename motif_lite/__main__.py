"""`python -m motif_lite ...` is `motif-lite ...` (also what `torchrun -m motif_lite` starts)."""

from motif_lite.entry_point import main

main()
