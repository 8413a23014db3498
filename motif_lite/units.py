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


def file_size(nbytes: int) -> str:
    """`nbytes` of a file, a download or a disk in decimal units: "4.70 GB", "12.5 MB", "3.2 kB"."""
    if nbytes == 0:
        return "0 GB"
    if round(nbytes / GB, 2) >= 0.1:
        return f"{nbytes / GB:.2f} GB"
    if round(nbytes / MB, 1) >= 0.1:
        return f"{nbytes / MB:.1f} MB"
    return f"{nbytes / KB:.1f} kB"


def memory_size(nbytes: int) -> str:
    """`nbytes` of memory (device or host) in binary units: "6.00 GiB", "51.2 MiB", "3.0 KiB"."""
    if nbytes == 0:  # "page-locked 0 GiB" rather than "0.0 KiB"
        return "0 GiB"
    if round(nbytes / GiB, 2) >= 0.1:
        return f"{nbytes / GiB:.2f} GiB"
    if round(nbytes / MiB, 1) >= 0.1:
        return f"{nbytes / MiB:.1f} MiB"
    return f"{nbytes / KiB:.1f} KiB"
