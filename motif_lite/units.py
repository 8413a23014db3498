"""How motif-lite writes a number of bytes for users: one rule for every message, summary and plan.

- Files and downloads (checkpoints, GGUF files, latents files, free disk space) in decimal units, 1 GB = 10**9 bytes,
  as file managers and the Hugging Face Hub show them (and as the docs give the checkpoints' sizes): `file_size`.
- Memory (VRAM, host RAM, memory plans and budgets) in binary units, 1 GiB = 2**30 bytes, as `--vram` and `--ram`
  take GiB and nvidia-smi shows MiB: `memory_size`.

Both write a size in the largest unit in which it reads at least 0.1 (`--ram 0.1` is 0.10 GiB, not 102.4 MiB), GB
and GiB with two decimals, the smaller units with one: two sizes side by side never both read 0.00 (a need of 3 MiB
against a budget of 1 MiB), and the tiny test models' files read in kB. Nothing at all is "0 GB" / "0 GiB".
"""

KB = 10**3
MB = 10**6
GB = 10**9
KiB = 2**10
MiB = 2**20
GiB = 2**30
# The caching allocator reserves more than it hands out; with expandable segments (set by run, serve, decode) the
# gap stays small. Measured on an H200 at 1280x736x121 (docs/benchmarks.md, "Low-memory plans"): reserved /
# allocated 1.09 in the 6 GiB plan (token pieces), but 1.22 all resident, where whole-stream tensors fragment more:
# the printed reserved figure is a guide, the budget is checked against the allocated estimate. Here, torch-free,
# for the planner and for the advice that quotes it (a run without --vram plans for the free memory / this).
RESERVED_RATIO = 1.08


# (bytes, name, decimals), largest first
_DECIMAL = ((GB, "GB", 2), (MB, "MB", 1), (KB, "kB", 1))
_BINARY = ((GiB, "GiB", 2), (MiB, "MiB", 1), (KiB, "KiB", 1))


def file_size(nbytes: int) -> str:
    """`nbytes` of a file, a download or a disk in decimal units: "4.70 GB", "12.5 MB", "3.2 kB"."""
    return _in_units(nbytes, _DECIMAL)


def memory_size(nbytes: int) -> str:
    """`nbytes` of memory (device or host) in binary units: "6.00 GiB", "51.2 MiB", "3.0 KiB"."""
    return _in_units(nbytes, _BINARY)


def _in_units(nbytes: int, units: tuple[tuple[int, str, int], ...]) -> str:
    """In the largest of `units` in which `nbytes` reads at least 0.1 once rounded, else the smallest."""
    if nbytes == 0:  # "page-locked 0 GiB" rather than "0.0 KiB"
        return f"0 {units[0][1]}"
    size, name, decimals = next((unit for unit in units if round(nbytes / unit[0], unit[2]) >= 0.1), units[-1])
    return f"{nbytes / size:.{decimals}f} {name}"
