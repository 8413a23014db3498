"""Which autotune configs the attention kernels offer on a GPU (kernels/launch.py): the row-split rule agrees with
the MMA layout Triton's compiler gives each config, for Ada and consumer Blackwell (sm_89, sm_120: `mma.sync`)
and Hopper (sm_90, wgmma), at the model's head dim and a smaller one, and the prune keeps exactly the configs
the rule allows. No GPU needed."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from cubins import compile_or_skip, int8_attention_or_skip

from motif_lite.kernels import attention, attention_int8, dequant_matmul, launch

LENGTH = 32_768


def mma_warps(asm: dict) -> set[tuple[int, int]]:
    """The warpsPerCTA of every MMA layout in a compiled kernel's TTGIR."""
    found = re.findall(r"nvidia_mma<\{[^}]*warpsPerCTA = \[(\d+), (\d+)\]", asm["ttgir"])
    assert found, "no MMA layout in the TTGIR"
    return {(int(m), int(n)) for m, n in found}


def dense_warps(capability: int, block_d: int, config) -> set[tuple[int, int]]:
    pointers = {name: "*bf16" for name in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    pointers.update(kmask_ptr="*u8", bmask_ptr="*i32", qk_scale="fp32")
    rows, head = 4 * LENGTH * block_d, LENGTH * block_d  # q, k and v: contiguous [B, 4, L, D]
    ints = dict(H=4, LQ=LENGTH, LK=LENGTH, D=block_d, sqb=rows, sqh=head, sqm=block_d, sqd=1, skb=rows, skh=head,
                skn=block_d, skd=1, svb=rows, svh=head, svn=block_d, svd=1)  # fmt: skip
    constexprs = dict(HAS_BLOCK_MASK=False, MASK_BLOCK=128, BLOCK_D=block_d, PRECISION="tf32", HAS_KEY_MASK=True,
                      EVEN_D=True, **config.kwargs)  # fmt: skip
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    return mma_warps(compile_or_skip(attention._attention_kernel, capability, pointers, constexprs, ints, **options))


def int8_warps(capability: int, block_d: int, config) -> set[tuple[int, int]]:
    options = dict(num_warps=config.num_warps, num_stages=config.num_stages)
    return mma_warps(int8_attention_or_skip(capability, dim=block_d, block_m=config.kwargs["BLOCK_M"], keys=LENGTH,
                                            **options))  # fmt: skip


def distinct_shapes(configs) -> list:
    """One config per (rows, keys, warps): the layout does not depend on the pipeline stages."""
    shapes = {}
    for config in configs:
        shapes.setdefault((config.kwargs["BLOCK_M"], config.kwargs.get("BLOCK_N"), config.num_warps), config)
    return list(shapes.values())


CASES = [("dense", config) for config in distinct_shapes(attention._CONFIGS)] + [
    ("int8", config) for config in distinct_shapes(attention_int8._CONFIGS)
]


# Ada and consumer Blackwell (mma.sync), Hopper (wgmma) only for the tiles that are wider than tall (128-row
# tiles split rows on every target).
TARGETS = [(capability, d) for capability in (89, 120, 90) for d in (64, 128)]


@pytest.mark.parametrize(
    ("kernel", "config", "capability", "block_d"),
    [
        pytest.param(k, c, cap, d, id=f"{k}-{c.kwargs['BLOCK_M']}rows-{c.num_warps}warps-sm{cap}-d{d}")
        for k, c in CASES
        for cap, d in TARGETS
        if cap != 90 or c.kwargs["BLOCK_M"] < d
    ],
)
def test_row_split_rule_matches_the_compiler(kernel: str, config, capability: int, block_d: int) -> None:
    block_n = config.kwargs.get("BLOCK_N", attention_int8.K_BLOCK)
    expected = launch.splits_rows(config.kwargs["BLOCK_M"], block_n, block_d, divmod(capability, 10))
    warps = (dense_warps if kernel == "dense" else int8_warps)(capability, block_d, config)
    assert (warps == {(config.num_warps, 1)}) == expected, warps


def test_the_prune_keeps_what_the_rule_allows(monkeypatch) -> None:
    """At head dim 128 on Ada or an RTX 50xx only the 128-row configs are tuned; on Hopper, or at head dim 64, all
    of them."""
    monkeypatch.setattr(launch.torch.cuda, "get_device_capability", lambda device: device.capability)

    def kept(configs, capability: tuple[int, int], block_d: int, **call) -> list:
        q = SimpleNamespace(device=SimpleNamespace(capability=capability))
        return launch.row_split_configs(configs, {"q_ptr": q}, BLOCK_D=block_d, **call)

    for configs, call in ((attention._CONFIGS, {}), (attention_int8._CONFIGS, {"BLOCK_N": attention_int8.K_BLOCK})):
        assert kept(configs, (9, 0), 128, **call) == configs
        assert kept(configs, (8, 9), 64, **call) == configs
        for mma_sync in ((8, 9), (12, 0)):
            tall = kept(configs, mma_sync, 128, **call)
            assert tall == [c for c in configs if c.kwargs["BLOCK_M"] == 128] and len(tall) < len(configs)


def test_autotuning_winners_are_kept_on_disk_where_triton_can():
    """Triton 3.4+ keeps each autotuning's winner on disk, so a later run tunes to the same tiles (the same bits
    for the same seed) without tuning again; older Triton has no such option and tunes every process."""
    import inspect

    import triton

    from motif_lite.kernels import attention, dequant_matmul, launch

    persisted = "cache_results" in inspect.signature(triton.autotune).parameters
    assert launch.PERSISTENT_TUNING.get("cache_results", False) == persisted
    tuned = launch.autotune_attention(attention._CONFIGS, attention._TUNE_KEY, attention.shared_memory_floor)(
        attention._attention_kernel
    )
    assert getattr(tuned, "cache_results", False) == persisted
    assert getattr(dequant_matmul._autotuned_kernel, "cache_results", False) == persisted


def model_attention_args(**strides: int) -> dict:
    """The dense attention's arguments as the autotuner's prune sees them for the model's call (bf16 [B, 12, L, 128]
    views of [B, L, 1536] projections); `strides` overrides some."""
    q, k, v = (torch.empty(1, dtype=torch.bfloat16) for _ in range(3))
    rows = 4096 * 1536
    k_strides = dict(skb=rows, skh=128, skn=1536, skd=1, svb=rows, svh=128, svn=1536, svd=1)
    return dict(q_ptr=q, k_ptr=k, v_ptr=v, BLOCK_D=128, **{**k_strides, **strides})


def test_the_autotuners_prune_drops_what_cannot_fit_the_gpu(monkeypatch) -> None:
    """The attention autotuner's prune drops, before any compile, the configs whose shared-memory floor is over the
    device's per-block maximum (99 KiB: an RTX 30xx): Hopper's 128 x 128 x 3-stage and 128 x 64 x 4-stage tiles. When
    k and v cannot load by `cp.async` (a head-dim stride other than 1) there are no pipeline buffers: nothing is
    dropped."""
    monkeypatch.setattr(launch.torch.cuda, "get_device_capability", lambda device: (8, 6))
    monkeypatch.setattr(launch, "max_shared_memory", lambda device: 99 * 1024)
    tuner = attention._attention_autotuned

    def kept(args: dict) -> list[str]:
        flags = {"BLOCK_D": args.pop("BLOCK_D")}  # a keyword of the call, as `block_sparse_attention` passes it
        configs = tuner.early_config_prune(tuner.configs, args, **flags)
        return [f"{c.kwargs['BLOCK_M']}x{c.kwargs['BLOCK_N']}-s{c.num_stages}" for c in configs]

    assert kept(model_attention_args()) == ["128x128-s2", "128x64-s3", "128x32-s1", "128x32-s3", "128x16-s1"]
    strided = kept(model_attention_args(skd=2, svd=2))
    assert "128x128-s3" in strided and "128x64-s4" in strided
    assert "128x128-s3" in kept(model_attention_args(svd=2))  # k's buffers alone (96 KiB) fit


def test_the_shared_memory_prune_keeps_the_smallest_config_when_none_fits() -> None:
    """The fused GEMM's configs for Q8_0 against a made-up limit: the ones whose xᵀ pipeline buffers fit are kept;
    when none fits, the one with the smallest floor is (the autotuner needs one config)."""
    x, w = torch.empty(1, dtype=torch.bfloat16), torch.empty(1, dtype=torch.uint8)
    args = dict(x_ptr=x, w_ptr=w, stride_xm=1536, stride_xk=1, stride_wn=1632, QTYPE=int(dequant_matmul.Q.Q8_0))

    def floor(config, capability=(8, 9)) -> int:
        return dequant_matmul.shared_memory_floor(config, args, capability)

    def kept(limit: int) -> list:
        return launch.fitting_configs(dequant_matmul.CONFIGS, args, (8, 9), dequant_matmul.shared_memory_floor, limit)

    assert max(map(floor, dequant_matmul.CONFIGS)) == 64 * 1024  # 256 tokens x 64 of K x 2 bytes x 2 buffers
    assert kept(48 * 1024) == [c for c in dequant_matmul.CONFIGS if floor(c) <= 48 * 1024]
    assert 0 < len(kept(48 * 1024)) < len(dequant_matmul.CONFIGS)
    assert kept(1024) == [min(dequant_matmul.CONFIGS, key=floor)]
    assert floor(dequant_matmul.CONFIGS[0], (7, 5)) == 0  # no cp.async on Turing


def test_the_fused_gemms_prune_drops_what_cannot_fit_the_gpu(monkeypatch) -> None:
    """On a 99 KiB GPU (an RTX 40xx) the fused GEMM's prune drops, before compiling, Q5_K's two configs that ask for
    100 and 104 KiB there; Q4_K, whose largest asks for 96 KiB, keeps all six."""
    monkeypatch.setattr(launch.torch.cuda, "get_device_capability", lambda device: (8, 9))
    monkeypatch.setattr(launch, "max_shared_memory", lambda device: 99 * 1024)
    tuner = dequant_matmul._autotuned_kernel
    x, w = torch.empty(1, dtype=torch.bfloat16), torch.empty(1, dtype=torch.uint8)

    def kept(qtype, row_bytes: int) -> list:
        args = dict(x_ptr=x, w_ptr=w, K=1536, stride_xm=1536, stride_xk=1, stride_wn=row_bytes)
        return tuner.early_config_prune(tuner.configs, args, QTYPE=int(qtype))

    assert kept(dequant_matmul.Q.Q4_K, 864) == dequant_matmul.CONFIGS
    q5_k = [c for c in dequant_matmul.CONFIGS if c not in kept(dequant_matmul.Q.Q5_K, 1056)]
    assert [(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]) for c in q5_k] == [
        (256, 128, 64),
        (128, 128, 64),
    ]


def test_tiles_load_by_cp_async_from_ampere_when_contiguous_and_16_byte_aligned() -> None:
    """`cp_async_tiles`: from sm_80 on, a tile with a unit-stride axis, a 16-byte aligned base and every other stride
    divisible by 16 (the JIT's hint) loads by `cp.async`; any of those missing, into registers."""
    x = torch.empty(64, dtype=torch.bfloat16)
    assert x.data_ptr() % 16 == 0
    assert launch.cp_async_tiles(x, (1536, 1), (8, 0)) and launch.cp_async_tiles(x[8:], (1536, 1), (8, 6))
    assert not launch.cp_async_tiles(x, (1536, 1), (7, 5))  # Turing
    assert not launch.cp_async_tiles(x[4:], (1536, 1), (8, 6))  # a base 8 bytes past a 16-byte boundary
    assert not launch.cp_async_tiles(x, (1544, 1), (8, 6))  # a stride divisible by 8, not by 16
    assert not launch.cp_async_tiles(x, (1536, 32), (8, 6))  # no unit stride


def test_a_config_whose_floor_is_the_limit_fits_it() -> None:
    x, w = torch.empty(1, dtype=torch.bfloat16), torch.empty(1, dtype=torch.uint8)
    args = dict(x_ptr=x, w_ptr=w, stride_xm=1536, stride_xk=1, stride_wn=1632, QTYPE=int(dequant_matmul.Q.Q8_0))
    floor = dequant_matmul.shared_memory_floor
    largest = max(floor(config, args, (8, 9)) for config in dequant_matmul.CONFIGS)
    assert launch.fitting_configs(dequant_matmul.CONFIGS, args, (8, 9), floor, largest) == dequant_matmul.CONFIGS


def test_amd_gpus_keep_every_config(monkeypatch) -> None:
    """The floors count NVIDIA's `cp.async` buffers: on a ROCm build nothing is pruned by them."""
    monkeypatch.setattr(launch, "rocm_build", lambda: True)
    configs = dequant_matmul.CONFIGS
    assert launch.device_fitting_configs(configs, {}, torch.device("cuda", 0), lambda *_: 1 << 40) == configs
