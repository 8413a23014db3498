"""What `auto`'s timed trial of the attention candidates (runtime/attention.py, `AutoAttention`) measures and
checks: the timer, each trial's outcome (`Trial`), and a candidate's output against float32 attention on the first
and the last query rows (`AgreementCheck`, with the error an exact kernel in that dtype may have there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

CHECK_ROWS = 128  # query rows at each end of the sequence checked against float32 attention in a trial
# Timer: (candidate name, a call of it, already warmed up) -> seconds per call. Injected by the tests.
Timer = Callable[[str, Callable[[], torch.Tensor]], float]


def synchronized_timer(name: str, call: Callable[[], torch.Tensor], reps: int = 2) -> float:
    """Seconds per call, waiting for the GPU the calls ran on: the output's, which is not the current device in a run
    on `--device cuda:1`. The trial's checked call was the warm-up (which may compile or autotune), and its check
    read the output back, so nothing queued before is timed.

    Each call's output is let go before the next call: the planner counts one attention output, not two."""
    start = time.perf_counter()
    for _ in range(reps):
        out = None  # free the previous output first (the caching allocator reuses it for this call's)
        out = call()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return (time.perf_counter() - start) / reps


@dataclass
class Trial:
    """The outcome of one timed trial: seconds per call of each candidate that ran and agreed with float32
    attention, and the reason each other one was dropped; or of a choice an earlier run made (`remembered`, no
    timings)."""

    keys: int  # key length of the trial's shape
    seconds: dict[str, float] = field(default_factory=dict)  # candidate -> seconds per call
    dropped: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not timed
    remembered: str | None = None

    @property
    def best(self) -> str:
        if self.remembered is not None:
            return self.remembered
        return min(self.seconds, key=self.seconds.get) if self.seconds else "sdpa"

    def describe(self) -> str:
        if self.remembered is not None:
            return f"{self.best} at {self.keys:,} keys (as an earlier run on this GPU chose)"
        timed = ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        dropped = "".join(f"; {n} dropped: {why}" for n, why in self.dropped.items())
        return f"{self.best} at {self.keys:,} keys ({timed}{dropped})"


def checked_rows(length: int) -> torch.Tensor:
    """The query rows a trial checks: CHECK_ROWS at each end of the sequence (all of a short one)."""
    if length <= 2 * CHECK_ROWS:
        return torch.arange(length)
    return torch.cat([torch.arange(CHECK_ROWS), torch.arange(length - CHECK_ROWS, length)])


def float32_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, key_chunk: int = 4096
) -> torch.Tensor:
    """Attention in float32 for a few query rows q [B, H, rows, D]: one head and `key_chunk` keys at a time, with
    the softmax accumulated online, so the trial adds tens of MB at the peak, not a head's whole K and V."""
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    for h in range(q.shape[1]):
        qh = q[:, h : h + 1].float() * q.shape[-1] ** -0.5  # [B, 1, rows, D]
        row_max = torch.full((*qh.shape[:3], 1), torch.finfo(torch.float32).min, device=q.device)
        total, acc = torch.zeros_like(row_max), torch.zeros_like(qh)
        for start in range(0, k.shape[2], key_chunk):
            keys = slice(start, start + key_chunk)
            scores = qh @ k[:, h : h + 1, keys].float().transpose(-1, -2)  # [B, 1, rows, chunk]
            if mask is not None:
                scores = scores.masked_fill(~mask[..., keys], float("-inf"))  # mask [B, 1, 1, Lk]
            new_max = torch.maximum(row_max, scores.amax(-1, keepdim=True))
            weights, rescale = torch.exp(scores - new_max), torch.exp(row_max - new_max)
            total = total * rescale + weights.sum(-1, keepdim=True)
            acc = acc * rescale + weights @ v[:, h : h + 1, keys].float()
            row_max = new_max
        out[:, h : h + 1] = acc / total
    return out


def dtype_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, elements: int = 2**22
) -> torch.Tensor:
    """torch's SDPA math kernel in q's dtype for a few query rows q [B, H, rows, D]: how far an exact kernel in that
    dtype is from float32 attention (on the CPU in bf16 SDPA's flash kernel erred 1.0x as much; the GPU's fused
    kernels are not yet measured against it). The math kernel holds every score, so it runs one head and a few rows
    at a time: at most `elements` scores [B, 1, rows, Lk] (tens of MB)."""
    out = torch.empty_like(q)
    step = max(1, elements // (q.shape[0] * k.shape[2]))
    with sdpa_kernel(SDPBackend.MATH):
        for h in range(q.shape[1]):
            for start in range(0, q.shape[2], step):
                rows = slice(start, start + step)
                out[:, h : h + 1, rows] = F.scaled_dot_product_attention(
                    q[:, h : h + 1, rows], k[:, h : h + 1], v[:, h : h + 1], attn_mask=mask
                )
    return out


def row_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """The worst query row's relative L2 error of got against want [B, H, rows, D]. Per row, because a wrong kernel's
    error may sit in a few rows (an ignored key mask changes mostly the rows that attend to the padded keys), while
    rounding spreads over all of them; rows of want near zero are measured against a thousandth of the largest."""
    want = want.float()
    norms = want.norm(dim=-1)
    return ((got.float() - want).norm(dim=-1) / norms.clamp(min=1e-3 * float(norms.max()))).max().item()


ERROR_FLOOR = {torch.float32: 1e-5}  # row_error allowed on top of the dtype's own: float32's; 16-bit dtypes 1e-3


@dataclass
class AgreementCheck:
    """What a trial checks a candidate's output against: float32 attention on the checked query rows (`want`), and
    the row error an exact kernel in the candidate's dtype may have there (`bound`): twice that of torch's SDPA math
    kernel in that dtype on the same rows, plus a small floor. A fixed tolerance cannot tell rounding from a bug in
    bf16 at Motif's lengths: at 4,000 to 20,000 keys a kernel that ignores the key mask, or has its softmax scale 1 %
    off, was as close to float32 attention as 2e-2 of the output's largest value."""

    rows: torch.Tensor
    want: torch.Tensor  # float32 [B, H, rows, D]
    bound: float

    def passes(self, out: torch.Tensor) -> bool:
        """Whether a candidate's whole output [B, H, L, D] agrees on the checked rows (NaN never does)."""
        return row_error(out[:, :, self.rows], self.want) <= self.bound
