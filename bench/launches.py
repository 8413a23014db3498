"""Aten ops per transformer forward and per sampling step, and the host syncs among them (issue #17).

    python bench/launches.py                 # the table: T2V/I2V, CFG/APG, Euler/DPM++ 2M, step cache, streaming
    python bench/launches.py --syncs         # and every sync with the Python line that caused it
    python bench/launches.py --json          # one JSON line per row

On a GPU every aten op that is not a view costs the host ~5-20 µs to issue, and an op that needs a value on the
host (`.item()`, `bool(tensor)`, `.tolist()`, `nonzero`, a boolean index...) stalls the host until the GPU has
drained its queue, so the next kernels start late. Both are counted here on the CPU, with a TorchDispatchMode
(`OpLog`) around the code that runs on the GPU in a real run: the same Python, so the same ops. The model is
`narrow_config`: the official block counts (12 dual-stream, 24 single-stream: 16 in the encoder, with the text
cross-attention, and the 8 of the DDT decoder) at one head of 128, so that a forward issues the 2B model's ops at
next to no arithmetic (the op count does not depend on the width). Counting, not timing: the numbers are exact
and machine-independent. A "step" is the loop's second step, `on_step` to `on_step`, run as the pipeline runs it
(`Conditioning.inputs`, `denoise`, the step cache); the pipeline's own per-step bookkeeping (CUDA-only code,
pipeline/step_watch.py) is not in it.

Columns: `ops` every aten op the dispatcher sees; `kernels` those that launch one on a GPU (not views, not
allocations); `syncs` ops that make the host wait for the device (`SYNC_OPS`, boolean indexing, and `.tolist()`,
`.cpu()`, `.numpy()` seen one level up by `_HostReads`). The "triton" rows run the two norm seams (kernels/norm.py)
as one launch each, as the Triton kernels do on a GPU: the torch op runs with the log paused and counts as one
kernel (the Triton kernels themselves need a GPU or the slow interpreter; their launch is one op by reading).
`tests/test_launches.py` holds the step to no sync and the forward to the counts measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))

from call_sites import call_site  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.model.ops import TORCH_OPS, Ops  # noqa: E402
from motif_lite.model.transformer import MotifVideoTransformer  # noqa: E402

TORCH_DIR = str(Path(torch.__file__).resolve().parent)
THIS_FILE = str(Path(__file__).resolve())

# Ops whose result the host must read (or whose output shape depends on the data): each waits for the device.
SYNC_OPS = {
    "_local_scalar_dense",  # .item(), bool(t), float(t), int(t), `if t:`
    "item",
    "is_nonzero",
    "nonzero",
    "masked_select",
    "unique",
    "_unique2",
    "unique_consecutive",
    "equal",
    "allclose",
}
HOST_READS = ("tolist", "cpu", "numpy")  # Tensor methods that copy to the host (invisible to the dispatcher on CPU)
FREE_OPS = {"empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like", "lift_fresh", "detach"}


def outside_torch_stack(limit: int = 6) -> list[str]:
    """The last `limit` frames of the current Python stack outside torch and this file (innermost last)."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith(TORCH_DIR) and f.filename != THIS_FILE]
    frames = [f for f in frames if "contextlib" not in f.filename]
    return [f"{Path(f.filename).name}:{f.lineno} ({f.name})" for f in frames[-limit:]]


@dataclass
class Sync:
    op: str
    site: str
    stack: list[str]


def is_sync(name: str, args: tuple) -> bool:
    """Whether an aten op (by its packet name) with these arguments waits for the device."""
    if name in SYNC_OPS:
        return True
    if name == "index":  # a boolean index is a nonzero inside the op
        return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in tree_leaves(args[1]))
    return name == "repeat_interleave" and len(args) == 1 and "output_size" not in args  # the repeats' sum


@dataclass
class OpLog:
    """What ran while recording: aten ops by name, kernels (ops that launch one on a GPU), and the syncs."""

    ops: Counter = field(default_factory=Counter)
    kernels: int = 0
    syncs: list[Sync] = field(default_factory=list)
    paused: bool = False

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def record(self, name: str, launches: bool, sync: bool) -> None:
        if self.paused:
            return
        self.ops[name] += 1
        self.kernels += launches
        if sync:
            self.syncs.append(Sync(name, call_site(THIS_FILE), outside_torch_stack()))

    def sync_sites(self) -> Counter:
        return Counter(f"{s.op} at {s.site}" for s in self.syncs)


class _Dispatch(TorchDispatchMode):
    def __init__(self, log: OpLog) -> None:
        super().__init__()
        self.log = log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        launches = not func.is_view and name not in FREE_OPS
        self.log.record(name, launches, is_sync(name, (*args, kwargs) if kwargs else args))
        return func(*args, **kwargs)


class _HostReads(TorchFunctionMode):
    """`.tolist()`, `.cpu()` and `.numpy()`: device-to-host copies on a GPU, no aten op on the CPU."""

    def __init__(self, log: OpLog) -> None:
        super().__init__()
        self.log = log

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.log.record(f"Tensor.{func.__name__}", launches=False, sync=True)
        return func(*args, **(kwargs or {}))


@contextmanager
def recording(active: list[OpLog] | None = None) -> Iterator[OpLog]:
    """Record every aten op and every host sync of the code inside; the log is in `active` meanwhile (the logs
    `fused_norm_ops` counts its launches in)."""
    log = OpLog()
    active = [] if active is None else active
    active.append(log)
    try:
        with _HostReads(log), _Dispatch(log):
            yield log
    finally:
        active.remove(log)


def one_launch(logs: list[OpLog], op: Callable[..., torch.Tensor], name: str) -> Callable:
    """`op` counted as one kernel (a Triton launch) in every log of `logs`, its own torch ops not recorded."""

    def launch(*args, **kwargs) -> torch.Tensor:
        for log in logs:
            log.paused = True
        try:
            out = op(*args, **kwargs)
        finally:
            for log in logs:
                log.paused = False
        for log in logs:
            log.record(name, launches=True, sync=False)
        return out

    return launch


def fused_norm_ops(logs: list[OpLog]) -> Ops:
    """`Ops` whose norm seams count as one launch each in the `logs` (the caller adds and removes the logs that
    are recording), as the Triton kernels (kernels/norm.py) launch."""
    return Ops(
        attention=TORCH_OPS.attention,
        decoder_attention=TORCH_OPS.decoder_attention,
        layer_norm_modulate=one_launch(logs, TORCH_OPS.layer_norm_modulate, "triton.layer_norm_modulate"),
        rms_norm_rope=one_launch(logs, TORCH_OPS.rms_norm_rope, "triton.rms_norm_rope"),
    )


def with_attention(ops: Ops, backend: str) -> Ops:
    """`ops` with one fixed attention backend of the runtime's (the torch op, or SDPA held to one kernel)."""
    if backend == "sdpa":
        return ops
    from motif_lite.runtime.attention_candidates import candidate

    attend = candidate(backend, device=torch.device("cpu"))
    return Ops(attend, attend, ops.layer_norm_modulate, ops.rms_norm_rope)


# ------------------------------------------------------------------------------------------------ the model


def narrow_config(image: bool = True) -> TransformerConfig:
    """The official block counts at one head of 128, small text (and image) widths."""
    return TransformerConfig(num_attention_heads=1, text_embed_dim=64, image_embed_dim=32 if image else None)


def narrow_model(config: TransformerConfig, seed: int = 0) -> MotifVideoTransformer:
    """`config`'s transformer in float32 with small random weights (finite values: real arithmetic, tiny)."""
    torch.manual_seed(seed)
    model = MotifVideoTransformer(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.02)
    return model


@dataclass(frozen=True)
class Case:
    """One row: what runs in a step."""

    image: bool = False  # I2V: image embeddings as context tokens
    guidance: str = "apg"  # "apg" (official), "cfg" or "none"
    solver: str = "euler"
    batched: bool = True  # both guidance branches in one batch-2 forward
    step_cache: float | None = None  # a threshold
    streaming: bool = False
    triton: bool = False
    attention: str = "sdpa"  # a fixed backend of runtime/attention.py ("flash": masked calls split by rows)

    def name(self) -> str:
        parts = ["I2V" if self.image else "T2V", self.guidance, self.solver]
        parts += [] if self.batched or self.guidance == "none" else ["two calls"]
        parts += [] if self.step_cache is None else [f"step cache {self.step_cache:g}"]
        parts += ["streamed"] if self.streaming else []
        parts += [] if self.attention == "sdpa" else [f"{self.attention} attention"]
        parts += ["triton norms"] if self.triton else ["torch ops"]
        return ", ".join(parts)


CASES = (
    Case(),
    Case(triton=True),
    Case(image=True),
    Case(guidance="cfg"),
    Case(guidance="none"),
    Case(batched=False),
    Case(solver="dpmpp_2m"),
    Case(solver="unipc"),
    Case(step_cache=0.0),
    Case(step_cache=1e9),
    Case(streaming=True),
    Case(attention="flash"),
)


@dataclass
class Counts:
    case: str
    forward: OpLog | None  # one forward of the recorded step (its first; none through the step cache)
    step: OpLog  # a whole step after the first (the sampler loop, guidance, solver, conditioning)


def step_counts(case: Case, steps: int = 3, text_tokens: tuple[int, int] = (12, 20), device: str = "cpu") -> Counts:
    """Run `steps` sampling steps of the narrow model the way the pipeline does (Conditioning.inputs, denoise with
    batched or separate guidance calls, the step cache); record step 2 (steps after the first are the run's
    steady state) and the first forward of that step. On CUDA, the recorded step also runs under
    `torch.cuda.set_sync_debug_mode("error")`: a sync the CPU count cannot see raises there."""
    from motif_lite.pipeline.conditioning import Conditioning
    from motif_lite.runtime.step_cache import StepCache, StepCacheConfig
    from motif_lite.runtime.streaming import StreamingConfig, apply_block_streaming
    from motif_lite.sampling import RECOMMENDED_APG, CFGConfig, Schedule, denoise, schedule_for

    config = narrow_config(case.image)
    model = narrow_model(config).to(device)
    active: list[OpLog] = []
    model.ops = with_attention(fused_norm_ops(active) if case.triton else TORCH_OPS, case.attention)
    handle = apply_block_streaming(model, StreamingConfig(device)) if case.streaming else None
    generator = torch.Generator().manual_seed(1)
    frames, height, width = 3, 4, 4  # 12 video tokens
    text, negative = (
        (
            torch.randn(1, n, config.text_embed_dim, generator=generator).to(device),
            torch.ones(1, n, dtype=torch.bool, device=device),
        )
        for n in text_tokens
    )
    image = torch.randn(1, 5, config.image_embed_dim, generator=generator).to(device) if case.image else None
    cond = Conditioning(
        text=text,
        negative=negative,
        latents=torch.zeros(1, 16, frames, height, width, device=device),
        mask=torch.zeros(1, 1, frames, height, width, device=device),
        image_embeds=image,
    )
    guidance = {"apg": RECOMMENDED_APG, "cfg": CFGConfig(scale=6.0), "none": None}[case.guidance]
    schedule = schedule_for(case.solver, steps, 5.0)
    schedule = Schedule(schedule.sigmas.to(device), schedule.timesteps.to(device))  # where the pipeline puts it
    cache = None if case.step_cache is None else StepCache(model, StepCacheConfig(case.step_cache), steps)
    logs: dict[str, OpLog] = {}
    step = 0

    def forward(x: torch.Tensor, t: torch.Tensor, branches: tuple[bool, ...]) -> torch.Tensor:
        hidden, text_embeds, text_mask, image_embeds = cond.inputs(x, branches)
        t = t.repeat(len(branches))
        if cache is not None:
            names = tuple("cond" if b else "uncond" for b in branches)
            return cache(step, hidden, t, text_embeds, text_mask, image_embeds, names)
        if step == 1 and "forward" not in logs:
            with recording(active) as log:
                out = model(hidden, t, text_embeds, text_mask, image_embeds)
            logs["forward"] = log
            return out
        return model(hidden, t, text_embeds, text_mask, image_embeds)

    step_log = OpLog()
    modes = (_HostReads(step_log), _Dispatch(step_log))

    def on_step(i: int, latents: torch.Tensor) -> None:
        """Records from the end of step 0 to the end of step 1: one whole step, the loop's own work included."""
        nonlocal step
        step = i + 1
        if step == 1:
            active.append(step_log)
            for mode in modes:
                mode.__enter__()
            if device.startswith("cuda"):
                torch.cuda.set_sync_debug_mode("error")
        elif step == 2:
            if device.startswith("cuda"):
                torch.cuda.set_sync_debug_mode("default")
            for mode in reversed(modes):
                mode.__exit__(None, None, None)
            active.remove(step_log)

    noise = torch.randn(1, 16, frames, height, width, generator=generator).to(device)
    with torch.no_grad(), _sync_debug_reset(device):
        denoise(
            lambda x, t, c: forward(x, t, (c,)),
            noise,
            schedule,
            case.solver,
            guidance,
            on_step,
            predict_guided=(lambda x, t: forward(x, t, (True, False)).chunk(2)) if case.batched else None,
        )
    if handle is not None:
        handle.remove()
    return Counts(case.name(), logs.get("forward"), step_log)


@contextmanager
def _sync_debug_reset(device: str) -> Iterator[None]:
    """CUDA's sync debug mode back to its default however the sampling ends (a sync raises inside a step)."""
    try:
        yield
    finally:
        if device.startswith("cuda"):
            torch.cuda.set_sync_debug_mode("default")


def forward_counts(case: Case, batch: int = 2, text_tokens: int = 20) -> OpLog:
    """The second forward of the narrow model with the same text mask, batch `batch` (one padded text row when 2,
    as batched guidance): a run's steady state (the first forward reads the mask on the host)."""
    config = narrow_config(case.image)
    model = narrow_model(config)
    active: list[OpLog] = []
    model.ops = with_attention(fused_norm_ops(active) if case.triton else TORCH_OPS, case.attention)
    latents = torch.randn(batch, config.in_channels, 3, 4, 4)
    text = torch.randn(batch, text_tokens, config.text_embed_dim)
    mask = torch.ones(batch, text_tokens, dtype=torch.bool)
    mask[-1, text_tokens // 2 :] = False
    image = torch.randn(batch, 5, config.image_embed_dim) if case.image else None
    with torch.no_grad():
        model(latents, torch.full((batch,), 500.0), text, mask if batch > 1 else None, image)  # reads the mask
        with recording(active) as log:  # a run's later forwards: the same mask tensor
            model(latents, torch.full((batch,), 400.0), text, mask if batch > 1 else None, image)
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description="aten ops and host syncs per forward and per sampling step")
    parser.add_argument("--syncs", action="store_true", help="list each sync with its Python line")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.json:
        print("| row | forward: ops | forward: kernels | forward: syncs | step: ops | step: kernels | step: syncs |")
        print("|---|---|---|---|---|---|---|")
    for case in CASES:
        counts = step_counts(case)
        f, s = counts.forward, counts.step
        forward = [f.total, f.kernels, len(f.syncs)] if f is not None else None
        step = [s.total, s.kernels, len(s.syncs)]
        if args.json:
            print(json.dumps(dict(case=counts.case, forward=forward, step=step, syncs=dict(s.sync_sites()))))
            continue
        cells = [*(forward or ["-"] * 3), *step]
        print(f"| {counts.case} | " + " | ".join(str(c) for c in cells) + " |")
        if args.syncs:
            for site, n in s.sync_sites().items():
                print(f"|   {n} x {site} | | | | | | |")


if __name__ == "__main__":
    main()
