"""How our kernels are launched: Triton options every launch states, and which autotune configs are worth tuning
on a given GPU."""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable

import torch
import triton
import triton.testing
from torch._subclasses.fake_tensor import FakeTensorMode
from triton.backends import backends

from motif_lite.gpus import rocm_build

from .errors import KernelInputError
from .patterns import block_size_problem

# FMA contraction on: the kernels were tuned, read in SASS and measured with it. Stated because Triton 3.9 warns
# on every first compile when it is left to the default, and Triton 3.10 turns that default off.
FUSED_FP = {"enable_fp_fusion": True}
# Triton 3.4 and newer keep each autotuning's winner on disk (Triton's cache folder, keyed by the kernel, its
# configs, the tuning key and the GPU): a later process takes the same tile sizes without tuning again, and so
# rounds the same way. Without it two runs could tune to different tiles when two configs time within noise, and
# give different bits for the same seed.
PERSISTENT_TUNING = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}


def triton_version(text: str) -> tuple[int, int]:
    """A Triton version string ("3.2.0", "3.5.0+git1a2b3c", "3.10.0") -> (major, minor), comparable as numbers."""
    major, minor = re.match(r"(\d+)\.(\d+)", text).groups()
    return int(major), int(minor)


def benchmark_options(warmup_ms: int = 25, rep_ms: int = 100, version: str = triton.__version__) -> dict[str, object]:
    """`triton.autotune` arguments that time each config with triton.testing.do_bench (Triton's defaults: 25 ms of
    warm-up, 100 ms timed), the function the CUDA driver gives, on every Triton from 3.2 on: 3.3 and newer take it
    as `do_bench`; 3.2's `autotune` drops `do_bench` and takes the deprecated warmup/rep instead."""
    if triton_version(version) < (3, 3):
        return {"warmup": warmup_ms, "rep": rep_ms}
    return {"do_bench": functools.partial(triton.testing.do_bench, warmup=warmup_ms, rep=rep_ms)}


def benchmark_buffer_bytes(empty_cache: Callable[[], torch.Tensor] | None = None) -> int:
    """Bytes of the buffer Triton's `do_bench` allocates on the GPU while an autotuner times a kernel's configs at
    a new tuning key (zeroed before each timed run to empty the L2 cache; 256 MiB in Triton 3.2 and 3.9). Asked of
    Triton, `empty_cache` (default: the GPU driver's `get_empty_cache_for_benchmark`, AMD's on a ROCm build, else
    NVIDIA's), under a fake-tensor mode, which gives the tensor's size without allocating it: a Triton that
    changes the size is followed. The driver's method is taken from its class: it reads nothing of the driver, and
    so works for a plan made on a machine without the GPU (an instance would load the GPU's library)."""
    if empty_cache is None:
        driver = backends["amd" if rocm_build() else "nvidia"].driver
        empty_cache = functools.partial(driver.get_empty_cache_for_benchmark, None)
    with FakeTensorMode():
        return empty_cache().nbytes


def import_safe_tuning(version: str = triton.__version__) -> dict[str, object]:
    """What an autotuner needs so that creating it, i.e. importing our kernel modules, works without a GPU. Before
    3.4 an autotuner given no benchmark function asks the active GPU driver for one when it is created, which raises
    on a machine without a GPU (the compile tests; `import` of the kernels): there, name the function."""
    return benchmark_options(version=version) if triton_version(version) < (3, 4) else {}


def check_block_size(kernel_name: str, block_size: int) -> None:
    """KernelInputError unless `block_size` can be a block mask's (`patterns.block_size_problem`)."""
    if (problem := block_size_problem(block_size)) is not None:
        raise KernelInputError(f"{kernel_name}: {problem}")


def qk_scale_exp2(dim: int) -> float:
    """SDPA's default softmax scale 1/sqrt(dim), times log2 e: the attention kernels' online softmax runs in exp2."""
    return 1.0 / math.sqrt(dim) * math.log2(math.e)


def tuned_launch_ok(
    autotuned: triton.runtime.Autotuner | None, block_d: int, has_blocks: bool, block_size: int
) -> bool:
    """Whether an attention call may take its kernel's autotuned launch: there is one (none under the interpreter),
    and the call is one its configs cover, head dims up to 128 and no block mask or one of blocks of 128 keys or
    more (no tuned tile straddles two mask blocks). Other calls take the kernel's fixed tiles."""
    return autotuned is not None and block_d <= 128 and (not has_blocks or block_size >= 128)


# Blackwell GPUs (compute capability 10.x: B200; 12.x: RTX 50xx) need Triton 3.3 (torch 2.7): 3.2's compiler has
# no such target, and for an RTX 50xx its LLVM aborts the whole process mid-compile (bench/triton_versions.py), which
# no fallback can catch.
BLACKWELL_TRITON = (3, 3)


def triton_too_old(version: str, capability: tuple[int, int]) -> str | None:
    """Why Triton `version` cannot build our kernels for an NVIDIA GPU of compute capability `capability` (what to
    install instead), or None when it can."""
    if capability[0] < 10 or triton_version(version) >= BLACKWELL_TRITON:
        return None
    return (
        f"Triton {version} cannot compile for compute capability {capability[0]}.{capability[1]} (Blackwell); "
        "install torch>=2.7, which brings triton>=3.3"
    )


def uses_mma_sync(capability: tuple[int, int]) -> bool:
    """Whether Triton's tensor-core dots are warp-level `mma.sync` on this GPU: Ampere and Ada (8.x) and consumer
    Blackwell (12.x: RTX 50xx), as against Hopper's warpgroup wgmma (9.x) and data-centre Blackwell's (10.x, 11.x)."""
    return capability[0] < 9 or capability[0] == 12


def splits_rows(block_m: int, block_n: int, block_d: int, capability: tuple[int, int]) -> bool:
    """Whether Triton gives an attention kernel's warps whole query rows (MMA layout warps [n, 1]).

    With `mma.sync` Triton (3.6 to 3.9) gives chained dots warps [n, 1] only when the tiles are at least as tall
    as wide, else [1, n]: the warps sit side by side across keys and head dims, and every row's maximum and sum
    crosses warps through shared memory (sm_89, head dim 128, 64 rows on 4 warps: 631 instead of 472 instructions
    per 64-key tile in the 8-bit kernel, 58 local stores in the dense one). On Hopper the wgmma layout splits rows
    whatever the tile; other targets are left to the autotuner. tests/test_kernels_tuning.py checks this rule
    against the compiled layouts (sm_89, sm_90, sm_120)."""
    return not uses_mma_sync(capability) or block_m >= max(block_n, block_d)


# Triton (3.x) runs `tl.dot` on tensor cores from compute capability 8.0 on; before that (Turing: RTX 20xx, T4) on
# the CUDA cores, with no MMA layout for the row-split rule to be about.
TENSOR_CORE_DOTS = (8, 0)


def turing_configs(configs: list[triton.Config]) -> list[triton.Config]:
    """The attention configs worth tuning on Turing: 64-row tiles. A block there gets 64 KiB of shared memory, and
    only the 64 x 64 tiles of the dense kernel fit it (64 KiB exactly; 128 x 64 asks for 96 KiB, 128 x 128 for 128:
    tests/test_kernels_compile.py). The others would each take a minute or more to compile, then fail to launch."""
    return [config for config in configs if config.kwargs["BLOCK_M"] <= 64] or configs


def row_split_configs(
    configs: list[triton.Config], named_args: dict, mma_sync_configs: list[triton.Config] = (), **kwargs
) -> list[triton.Config]:
    """`early_config_prune` for the attention kernels: the configs whose warps own whole rows on this GPU (all of
    them if none does), `mma_sync_configs` among them on `mma.sync` GPUs. Needs q_ptr and BLOCK_D among the call's
    arguments, BLOCK_N in the config or the call. On AMD GPUs all of `configs`: the rule is about NVIDIA's MMA
    layouts, and a ROCm build's device capability is not an NVIDIA one (an RX 9070's gfx1201 reads 12.0, an RTX
    50xx's number)."""
    if rocm_build():
        return configs
    args = {**named_args, **kwargs}
    capability = torch.cuda.get_device_capability(args["q_ptr"].device)
    return offered_configs(configs, capability, args, mma_sync_configs)


def offered_configs(
    configs: list[triton.Config],
    capability: tuple[int, int],
    args: dict,
    mma_sync_configs: list[triton.Config] = (),
) -> list[triton.Config]:
    """`row_split_configs` on an NVIDIA GPU of compute capability `capability`: on Turing `turing_configs`, else the
    configs whose warps own whole rows (all of them if none does), where `mma_sync_configs` are added first on the
    GPUs that use `mma.sync` (Ampere, Ada, RTX 50xx)."""
    if capability < TENSOR_CORE_DOTS:
        return turing_configs(configs)
    candidates = [*configs, *mma_sync_configs] if uses_mma_sync(capability) else configs
    kept = [
        config
        for config in candidates
        if splits_rows(config.kwargs["BLOCK_M"], {**args, **config.kwargs}["BLOCK_N"], args["BLOCK_D"], capability)
    ]
    return kept or configs


# A shared-memory floor: (config, the call's arguments, compute capability) -> the fewest bytes of shared memory
# a block of the compiled launch asks for. Each autotuned kernel has one (`attention.shared_memory_floor`, ...).
SharedFloor = Callable[[triton.Config, dict, tuple[int, int]], int]


def max_shared_memory(device: torch.device) -> int:
    """Bytes of shared memory one block may use on `device` (CUDA's opt-in per-block maximum), from Triton's
    driver: 64 KiB on Turing, 99 KiB on the RTX 30xx/40xx/50xx, 163 KiB on an A100, 227 KiB on Hopper."""
    return triton.runtime.driver.active.utils.get_device_properties(device.index)["max_shared_mem"]


def cp_async_tiles(tensor: torch.Tensor, strides: tuple[int, ...], capability: tuple[int, int]) -> bool:
    """Whether Triton loads tiles of `tensor` (addressed by `strides`, in elements) by 16-byte `cp.async` copies,
    which it pipelines through num_stages - 1 shared-memory buffers: from compute capability 8.0 on, when the tile
    is contiguous along one axis (a stride of 1, which the JIT specializes to a constant) and everything else is
    16-byte aligned (a 16-byte aligned base, every other stride a multiple of 16: the JIT's divisibility hint).
    Otherwise Triton loads the tiles into registers and allocates no such buffers."""
    return (
        capability >= TENSOR_CORE_DOTS
        and tensor.data_ptr() % 16 == 0
        and 1 in strides
        and all(stride % 16 == 0 for stride in strides if stride != 1)
    )


def fitting_configs(
    configs: list[triton.Config], args: dict, capability: tuple[int, int], floor: SharedFloor, limit: int
) -> list[triton.Config]:
    """The configs whose shared-memory floor fits `limit` bytes (the device's per-block maximum), or the one with
    the smallest floor if none does. Pruned before compiling: a config that does not fit would otherwise be
    compiled (a second or more of the user's time) only for its launch to fail. The floor is a lower bound of what
    the compiled launch asks for (tests/test_kernels_compile.py checks it per kernel, config and GPU generation),
    so a config dropped here cannot fit."""
    kept = [config for config in configs if floor(config, args, capability) <= limit]
    return kept or [min(configs, key=lambda config: floor(config, args, capability))]


def device_fitting_configs(configs: list[triton.Config], args: dict, device: torch.device, floor: SharedFloor) -> list:
    """`fitting_configs` for the CUDA device `device`. On AMD GPUs all of `configs`: the floors count NVIDIA's
    `cp.async` buffers."""
    if rocm_build():
        return configs
    capability = torch.cuda.get_device_capability(device)
    return fitting_configs(configs, args, capability, floor, max_shared_memory(device))


# A kernel's own rule on which configs a call may use: (config, the call's arguments) -> whether it may.
ConfigRule = Callable[[triton.Config, dict], bool]


def autotune_attention(
    configs: list[triton.Config],
    key: list[str],
    shared_floor: SharedFloor,
    mma_sync_configs: list[triton.Config] = (),
    allowed: ConfigRule | None = None,
) -> Callable[[Callable], triton.runtime.Autotuner]:
    """`triton.autotune` for the attention kernels: `configs`, and on `mma.sync` GPUs `mma_sync_configs` too, those
    the kernel's rule `allowed` takes for the call (all without one), pruned per GPU by `row_split_configs`, then
    by `fitting_configs` with the kernel's `shared_floor`."""

    def prune(offered: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
        # `offered` is the autotuner's whole list, both of ours: pick from them by call and GPU.
        args = {**named_args, **kwargs}
        usable, usable_mma_sync = configs, mma_sync_configs
        if allowed is not None:
            usable = [config for config in configs if allowed(config, args)]
            usable_mma_sync = [config for config in mma_sync_configs if allowed(config, args)]
        kept = row_split_configs(usable, args, usable_mma_sync)
        return device_fitting_configs(kept, args, args["q_ptr"].device, shared_floor)

    return triton.autotune(
        configs=[*configs, *mma_sync_configs],
        key=key,
        prune_configs_by={"early_config_prune": prune},
        **PERSISTENT_TUNING,
        **import_safe_tuning(),
    )
