"""The bytes one transformer forward moves outside its matmuls and attention, and the time they predict (issue #17).

    python bench/traffic.py 832x480x49                  # both variants: kinds, top call sites, predicted ms
    python bench/traffic.py 1280x736x121 --variant fused --top 20
    python bench/traffic.py 832x480x49 --json           # one JSON line per variant
    python bench/traffic.py --host                      # the host's time to issue one forward (CPU, ~10 s)
    pytest bench/test_traffic.py                        # the counter against hand-computed bytes (CPU, seconds)

A model, not a measurement (the GPU check is bench/bench_profile.py). The model's own code runs on the `meta`
device (shapes and strides only: nothing is allocated or computed) under `TrafficCounter`, a TorchDispatchMode
that records every aten op as one kernel that reads each tensor argument once and writes each output once, in
bytes of the memory it spans (a broadcast, stride-0 dimension counts once). Views and allocations cost nothing and
launch nothing; in-place ops read their operands and write their target, out= ops only write their out; a copy
between two views of the same memory (what `x[rows] += y` ends with) is skipped, as `copy_` skips it on the GPU.

Two variants of the forward, through the model's `Ops` seam (motif_lite/model/ops.py):
  * "torch": `TORCH_OPS` as they are, each aten op one kernel; F.rms_norm as the one kernel CUDA runs
    (`aten::_fused_rms_norm`, reading its input and weight, writing its output and fp32 rstd), preceded by a copy
    when its input is not contiguous (the CUDA kernel makes it contiguous first). On the CPU and `meta`, torch
    decomposes it into seven ops instead; the counter's TorchFunctionMode records the CUDA form.
  * "fused": each `layer_norm_modulate` and `rms_norm_rope` call is one kernel reading its inputs and writing its
    output, as the Triton kernels (kernels/norm.py) do; the torch op runs with recording paused.
In both, each attention call through the seam is one kernel (kind "attention": its time comes from its FLOPs, not
its bytes). Each op goes to a kind by bench_profile's `kind_of` on its name ("aten::add", "ops.rms_norm_rope").

What the model leaves out: caches (an op's inputs are read from memory even when the previous op just wrote them,
and a tensor read by every head, like RoPE's cos/sin in `rms_norm_rope`, is counted once); kernels' efficiency
(a kernel streams at the bandwidth given; `summary` also prices the fused norms at the rates they reached on an
H100); libraries that launch more than one kernel for an op (cuBLAS, cuDNN); what happens outside the forward
(guidance, the solver). The attention's output is laid out [B, H, L, D] as on `meta`, so `merge_heads` copies it;
with a kernel that writes [B, L, H, D] (FlashAttention's layout) that copy is a view.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_profile import kind_of  # noqa: E402
from bench_speed import NEGATIVE_TOKENS, PROMPT_TOKENS, latent_shape  # noqa: E402
from call_sites import call_site  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.model.ops import TORCH_OPS, Ops  # noqa: E402

THIS_FILE = str(Path(__file__).resolve())

PEAK_TB_S = 4.8  # H200 HBM3e, NVIDIA's figure
ACHIEVED_TB_S = 3.8  # ~80 % of peak: what large streaming kernels (copies, elementwise) typically reach
LAUNCH_US = (5.0, 10.0)  # host time per eager op: Python, dispatcher, launch
# The rates our fused kernels reached on an H100 at 32k tokens (docs/benchmarks.md, "GPU check (H100)",
# 2026-11-27), in bytes as counted here: layer_norm_modulate 201 MB in 0.116 ms; rms_norm_rope on the head view
# [1, 12, 32768, 128] with RoPE on 32704 tokens, 235 MB in 0.602 ms (that time includes computing cos and sin).
# Both are well below the H100's 3.35 TB/s (52 % and 12 %); assumed to be the same on the H200, whose extra
# bandwidth would help only a kernel limited by it. rms_norm_rope's rate is its first version's: the kernel was
# rewritten after this model pointed at it (whole-row vector accesses; docs/kernels.md) and is not timed yet.
MEASURED_TB_S = {"ops.layer_norm_modulate": 1.74, "ops.rms_norm_rope": 0.39}
TEXT_TOKENS = max(PROMPT_TOKENS, NEGATIVE_TOKENS)  # the batched step pads the prompt to the negative prompt's 150
KINDS = ("norms and RoPE", "copies", "elementwise", "other")  # neither attention nor matmul
FREE_OPS = {"_unsafe_view", "empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like", "lift_fresh"}
WRITE_ONLY = {"copy_", "fill_", "zero_"}  # in-place ops that do not read their target


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of the memory a tensor spans: its element count without broadcast (stride-0) dimensions."""
    if t.numel() == 0:
        return 0
    return t.element_size() * math.prod(size for size, stride in zip(t.shape, t.stride(), strict=True) if stride)


def distinct_tensors(values: Iterable) -> list[torch.Tensor]:
    """The tensors among (nested) values, each object once: a kernel reads an argument passed twice once."""
    seen: dict[int, torch.Tensor] = {}
    for value in tree_leaves(list(values)):
        if isinstance(value, torch.Tensor):
            seen.setdefault(id(value), value)
    return list(seen.values())


def same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two views of the same elements (copy_ returns early for them on the GPU: no kernel)."""
    return (
        a.untyped_storage()._cdata == b.untyped_storage()._cdata  # one StorageImpl (meta storages have no address)
        and a.storage_offset() == b.storage_offset()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


@dataclass
class Traffic:
    """Kernels (calls) and bytes read and written, summed over a group of ops."""

    calls: int = 0
    read: int = 0
    written: int = 0

    @property
    def bytes(self) -> int:
        return self.read + self.written

    def add(self, other: Traffic) -> None:
        self.calls += other.calls
        self.read += other.read
        self.written += other.written


class _CudaRmsNorm(TorchFunctionMode):
    """F.rms_norm as one kernel (CUDA's `_fused_rms_norm`), with the contiguous copy CUDA makes of its input."""

    def __init__(self, counter: TrafficCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in (F.rms_norm, torch.rms_norm) or self.counter.is_paused:
            return func(*args, **kwargs)
        x, shape = args[0], args[1] if len(args) > 1 else kwargs["normalized_shape"]
        weight = args[2] if len(args) > 2 else kwargs.get("weight")
        with self.counter.paused():
            out = func(*args, **kwargs)
        if not x.is_contiguous():
            self.counter.record("aten::clone", tensor_bytes(x), x.numel() * x.element_size())
        rows = x.numel() // math.prod(shape) if x.numel() else 0
        read = tensor_bytes(x) + (tensor_bytes(weight) if weight is not None else 0)
        self.counter.record("aten::_fused_rms_norm", read, tensor_bytes(out) + 4 * rows)  # + rstd, fp32 per row
        return out


class TrafficCounter(TorchDispatchMode):
    """Records each aten op run under it as one kernel with the bytes it reads and writes, by (name, call site).

        with torch.no_grad(), TrafficCounter() as counter:
            model(...)
        counter.by_kind()     # {kind: Traffic}

    `cuda_rms_norm`: count F.rms_norm as CUDA runs it (one kernel) rather than as the CPU/meta decomposition.
    `paused()` stops recording (a seam call counted as one kernel runs its torch ops inside it)."""

    def __init__(self, cuda_rms_norm: bool = True) -> None:
        super().__init__()
        self.sites: dict[tuple[str, str], Traffic] = defaultdict(Traffic)
        self.is_paused = False
        self.free_calls = 0  # views and allocations: host work, no kernel, no traffic
        self._function_mode = _CudaRmsNorm(self) if cuda_rms_norm else None

    def __enter__(self) -> TrafficCounter:
        if self._function_mode is not None:
            self._function_mode.__enter__()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if self._function_mode is not None:
            self._function_mode.__exit__(*exc)

    @contextmanager
    def paused(self) -> Iterator[None]:
        was, self.is_paused = self.is_paused, True
        try:
            yield
        finally:
            self.is_paused = was

    def record(self, name: str, read: int, written: int, site: str | None = None) -> None:
        self.sites[(name, site or call_site(THIS_FILE))].add(Traffic(1, read, written))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        returns = func._schema.returns
        view = bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)
        if self.is_paused:
            return out
        if view or name in FREE_OPS or (name == "copy_" and same_memory(args[0], args[1])):
            self.free_calls += 1
            return out
        # An out= op's output arguments are written, not read (`torch.ops.aten.gelu.out(x, out=columns)`).
        outs = {arg.name for arg in func._schema.arguments if arg.is_out}
        inputs = distinct_tensors([*args, *(value for key, value in kwargs.items() if key not in outs)])
        if name in WRITE_ONLY:
            inputs = [t for t in inputs if t is not args[0]]
        outputs = distinct_tensors([out])
        self.record(f"aten::{name}", sum(map(tensor_bytes, inputs)), sum(map(tensor_bytes, outputs)))
        return out

    def by_kind(self) -> dict[str, Traffic]:
        return self._grouped(lambda name, site: kind_of(name))

    def by_op(self) -> dict[str, Traffic]:
        return self._grouped(lambda name, site: name)

    def _grouped(self, key: Callable[[str, str], str]) -> dict[str, Traffic]:
        groups: dict[str, Traffic] = defaultdict(Traffic)
        for (name, site), traffic in self.sites.items():
            groups[key(name, site)].add(traffic)
        return dict(groups)

    def kernels(self) -> int:
        return sum(t.calls for t in self.sites.values())


def recording_ops(counter: TrafficCounter, fused: bool, base: Ops = TORCH_OPS) -> Ops:
    """An `Ops` whose attention calls (and with `fused`, its norm calls) each record one kernel that reads the
    call's tensor arguments and writes its result, running `base`'s op with recording paused."""

    def seam(name: str, op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def call(*args, **kwargs) -> torch.Tensor:
            with counter.paused():
                out = op(*args, **kwargs)
            read = sum(map(tensor_bytes, distinct_tensors([*args, *kwargs.values()])))
            counter.record(f"ops.{name}", read, tensor_bytes(out))
            return out

        return call

    names = ("attention", "decoder_attention") + (("layer_norm_modulate", "rms_norm_rope") if fused else ())
    return Ops(**{name: seam(name, getattr(base, name)) for name in names})


def forward_traffic(
    size: tuple[int, int, int],
    variant: str,
    config: TransformerConfig | None = None,
    text_tokens: int = TEXT_TOKENS,
    batch: int = 1,
) -> TrafficCounter:
    """The traffic of one text-to-video forward at `size` (W, H, F) in bf16, the model built on `meta`.
    `config`: the official 2B architecture by default (`TransformerConfig()`, what the cost model uses)."""
    from motif_lite.weights.loader import build_model

    config = config or TransformerConfig()
    model = build_model(config).to(torch.bfloat16).eval()  # on meta: no memory
    counter = TrafficCounter()
    model.ops = recording_ops(counter, fused={"fused": True, "torch": False}[variant])
    shape = (batch, config.in_channels, *latent_shape(*size)[2:])
    meta = dict(device="meta", dtype=torch.bfloat16)
    latents, text = torch.empty(shape, **meta), torch.empty(batch, text_tokens, config.text_embed_dim, **meta)
    timestep = torch.empty(batch, device="meta")
    with torch.no_grad(), counter:
        model(latents, timestep, text)  # all text tokens valid (no mask), no image: text-to-video
    return counter


# --------------------------------------------------------------------------------------------- host time


def narrow_config() -> TransformerConfig:
    """The official blocks (12 dual-stream, 16 single-stream, 8 decoder) at one head of 128 and a small text width:
    a forward issues the same ops as the 2B model's, with next to no arithmetic."""
    return TransformerConfig(num_attention_heads=1, text_embed_dim=64, image_embed_dim=None)


def host_seconds(variant: str, batch: int = 2, repeats: int = 5, text_mask: bool = False) -> list[float]:
    """Wall seconds of `repeats` forwards (after one warm-up) of `narrow_config` over 12 video and 16 text tokens on
    the CPU, one thread, bf16: what issuing one forward's ops costs the host, the Python and the dispatcher's share
    of a GPU forward (CUDA adds its own per-launch cost). "fused": the two norm seams return an empty output, as a
    Triton launch returns at once; `text_mask`: one row's text half padded (batched guidance's masked attention)."""
    from motif_lite.weights.loader import build_model

    torch.set_num_threads(1)
    config = narrow_config()
    model = build_model(config).to_empty(device="cpu").to(torch.bfloat16).eval()
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.02)  # finite values: the arithmetic is real, only tiny
    if variant == "fused":
        model.ops = Ops(
            attention=TORCH_OPS.attention,
            decoder_attention=TORCH_OPS.decoder_attention,
            layer_norm_modulate=lambda x, shift, scale, eps=1e-6: torch.empty_like(x),
            rms_norm_rope=lambda x, weight, eps, cos=None, sin=None: torch.empty(x.shape, dtype=x.dtype),
        )
    latents = torch.randn(batch, config.in_channels, 3, 4, 4, dtype=torch.bfloat16)  # 3 x 2 x 2 = 12 video tokens
    text = torch.randn(batch, 16, config.text_embed_dim, dtype=torch.bfloat16)
    mask = None
    if text_mask:
        mask = torch.ones(batch, 16, dtype=torch.bool)
        mask[-1, 8:] = False
    timestep = torch.full((batch,), 500.0)
    seconds = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            model(latents, timestep, text, text_mask=mask)
            seconds.append(time.perf_counter() - start)
    return seconds[1:]


# ------------------------------------------------------------------------------------------------ report


def ms(nbytes: int, tb_s: float) -> float:
    return nbytes / (tb_s * 1e12) * 1e3


def summary(counter: TrafficCounter, top: int = 10, achieved: float = ACHIEVED_TB_S) -> dict:
    """Per kind (GB, ms at peak and at `achieved` TB/s, kernels), the neither-attention-nor-matmul total (also with
    the fused norms at their MEASURED_TB_S rates), the host time of launching every kernel at LAUNCH_US each, and
    the `top` call sites by bytes among those kinds."""
    kinds = counter.by_kind()

    def row(traffic: Traffic) -> dict:
        return dict(
            gb=round(traffic.bytes / 1e9, 2),
            ms_peak=round(ms(traffic.bytes, PEAK_TB_S), 2),
            ms_achieved=round(ms(traffic.bytes, achieved), 2),
            kernels=traffic.calls,
        )

    rest = Traffic()
    for kind in KINDS:
        rest.add(kinds.get(kind, Traffic()))
    sites = [(name, site, t) for (name, site), t in counter.sites.items() if kind_of(name) in KINDS]
    sites.sort(key=lambda item: -item[2].bytes)
    ops = counter.by_op()
    measured = [ops[name].bytes for name in MEASURED_TB_S if name in ops]
    at_measured = sum(ms(ops[name].bytes, rate) for name, rate in MEASURED_TB_S.items() if name in ops)
    at_measured += ms(rest.bytes - sum(measured), achieved)
    return dict(
        kinds={kind: row(kinds[kind]) for kind in (*KINDS, "matmul", "attention") if kind in kinds},
        rest=row(rest),
        rest_ms_measured_norms=round(at_measured, 2) if measured else None,
        kernels=counter.kernels(),
        host_only_ops=counter.free_calls,
        launch_ms={f"{us:g} us": round(counter.kernels() * us / 1e3, 2) for us in LAUNCH_US},
        top=[dict(op=name, site=site, kind=kind_of(name), **row(t)) for name, site, t in sites[:top]],
    )


def print_table(title: str, result: dict, achieved: float) -> None:
    print(f"\n{title}")
    print(f"| kind | GB / forward | ms at {PEAK_TB_S:g} TB/s | ms at {achieved:g} TB/s | kernels / forward |")
    print("|---|---|---|---|---|")
    for kind, r in result["kinds"].items():
        timed = kind not in ("matmul", "attention")
        peak, at = (r["ms_peak"], r["ms_achieved"]) if timed else ("(FLOPs)", "(FLOPs)")
        print(f"| {kind} | {r['gb']} | {peak} | {at} | {r['kernels']} |")
    r = result["rest"]
    print(f"| **neither attention nor matmul** | {r['gb']} | {r['ms_peak']} | {r['ms_achieved']} | {r['kernels']} |")
    if result["rest_ms_measured_norms"] is not None:
        rates = ", ".join(f"{name} {rate:g} TB/s" for name, rate in MEASURED_TB_S.items())
        print(
            f"\nneither attention nor matmul, the fused norms at their H100 rates ({rates}), the rest at "
            f"{achieved:g} TB/s: {result['rest_ms_measured_norms']} ms"
        )
    launches = ", ".join(f"{v} ms at {k}" for k, v in result["launch_ms"].items())
    print(
        f"\nkernels in all: {result['kernels']} (and {result['host_only_ops']} views and allocations, no kernel); "
        f"launches: {launches} per kernel"
    )
    print(f"\n| op | call site | kind | calls | GB | ms at {achieved:g} TB/s |")
    print("|---|---|---|---|---|---|")
    for t in result["top"]:
        print(f"| {t['op']} | {t['site']} | {t['kind']} | {t['kernels']} | {t['gb']} | {t['ms_achieved']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description="bytes moved by one transformer forward, by kind and call site")
    parser.add_argument("size", nargs="?", help="WxHxF, e.g. 832x480x49 (not with --host)")
    parser.add_argument("--variant", choices=("torch", "fused", "both"), default="both")
    parser.add_argument("--text", type=int, default=TEXT_TOKENS, help="text tokens (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--top", type=int, default=12, help="call sites listed (default: %(default)s)")
    parser.add_argument("--bandwidth", type=float, default=ACHIEVED_TB_S, help="achieved TB/s (%(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON line per variant instead of tables")
    parser.add_argument(
        "--host", action="store_true", help="instead: the host's time to issue one forward (narrow model, CPU)"
    )
    args = parser.parse_args()
    if args.host:
        for variant in ("torch", "fused") if args.variant == "both" else (args.variant,):
            for masked in (False, True):
                times = host_seconds(variant, max(args.batch, 2), text_mask=masked)
                each = ", ".join(f"{t * 1e3:.1f}" for t in times)
                what = f"{variant}, masked text" if masked else variant
                print(f"host, {what}: median {statistics.median(times) * 1e3:.1f} ms per forward ({each})")
        return
    if args.size is None:
        parser.error("give a size WxHxF, e.g. 832x480x49 (or --host)")
    size = tuple(int(v) for v in args.size.split("x"))
    for variant in ("torch", "fused") if args.variant == "both" else (args.variant,):
        counter = forward_traffic(size, variant, text_tokens=args.text, batch=args.batch)
        result = summary(counter, args.top, args.bandwidth)
        if args.json:
            print(json.dumps(dict(size=args.size, variant=variant, text=args.text, batch=args.batch, **result)))
        else:
            title = f"{args.size}, {variant} variant, batch {args.batch}, {args.text} text tokens, bf16"
            print_table(title, result, args.bandwidth)


if __name__ == "__main__":
    main()
