"""Exact attention backends (`--attention-backend`): fixed kernels equal float64 attention (masked calls row by
row for the kernels that take no mask), and `auto`'s timed trial, driven here by injected timings, picks the
fastest candidate that works and agrees with float32 attention, once per attention shape."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import warnings
import weakref

import pytest
import torch
import torch.nn.functional as F
from attention_inputs import dit_like_qkv, trailing_padding
from speed_helpers import tiny_transformer
from tiny_config import inputs

from motif_lite.errors import ConfigError
from motif_lite.model.ops import TORCH_OPS, sdpa_attention
from motif_lite.runtime import attention as attention_module
from motif_lite.runtime import attention_masks, attention_trials
from motif_lite.runtime.attention import (
    AutoAttention,
    FixedAttention,
    _shape_text,
    apply_attention_backend,
    attention_backend,
)
from motif_lite.runtime.attention_candidates import auto_candidates, candidate
from motif_lite.runtime.attention_choices import RememberedChoices, environment
from motif_lite.runtime.attention_masks import KeyLengths, attend_by_rows, valid_key_lengths
from motif_lite.runtime.attention_trials import checked_rows, float32_attention
from motif_lite.runtime.kernels import FallbackOp, KernelFailedError, begin_run, fallbacks, kernel_ops


def qkv(batch: int = 2, lq: int = 24, lk: int = 30, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 2, n, 16, generator=g) for n in (lq, lk, lk))


def trailing_mask(lengths: list[int], lk: int = 30) -> torch.Tensor:
    return (torch.arange(lk)[None] < torch.tensor(lengths)[:, None])[:, None, None]  # [B, 1, 1, Lk]


def test_row_split_equals_masked_sdpa():
    q, k, v = qkv()
    mask = trailing_mask([30, 21])
    got = attend_by_rows(sdpa_attention, q, k, v, mask, KeyLengths())
    torch.testing.assert_close(got, sdpa_attention(q, k, v, mask), rtol=1e-6, atol=1e-6)
    # Negative control: ignoring the mask changes the padded row.
    assert (sdpa_attention(q, k, v, None)[1] - got[1]).abs().max() > 1e-2
    same = trailing_mask([25, 25])
    torch.testing.assert_close(
        attend_by_rows(sdpa_attention, q, k, v, same, KeyLengths()), sdpa_attention(q, k, v, same)
    )


def test_key_lengths_are_read_once_per_mask(monkeypatch: pytest.MonkeyPatch):
    # A run passes the same mask tensors to every block and forward: each one's lengths are read to the host once,
    # even when the joint and the text mask take turns through one backend; a new mask is read again even if it is
    # equal, and so is a mask changed in place.
    reads = []
    monkeypatch.setattr(attention_masks, "valid_key_lengths", lambda m: reads.append(m) or valid_key_lengths(m))
    lengths = KeyLengths()
    joint, text = trailing_mask([30, 21]), trailing_mask([9, 4])
    for _ in range(3):
        assert lengths(joint) == [30, 21] and lengths(text) == [9, 4]
    assert len(reads) == 2
    assert lengths(trailing_mask([30, 21])) == [30, 21] and len(reads) == 3
    joint[1, ..., 21] = True
    assert lengths(joint) == [30, 22] and len(reads) == 4


def test_only_trailing_padding_can_be_split():
    assert valid_key_lengths(trailing_mask([30, 7])) == [30, 7]
    holes = trailing_mask([30, 30])
    holes[1, ..., 3] = False
    with pytest.raises(ConfigError, match="trailing"):
        valid_key_lengths(holes)


def exact_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(QKᵀ/√D)·V in float64, written out: no SDPA kernel, so it checks them all (on the CPU `sdpa` and
    `flash` both run torch's flash kernel)."""
    scores = q.double() @ k.double().transpose(-1, -2) / q.shape[-1] ** 0.5  # [B, H, Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v.double()).float()


@pytest.mark.parametrize("name", ["sdpa", "flash"])  # the two SDPA kernels the CPU has
def test_fixed_backends_equal_exact_attention(name):
    attend = candidate(name)
    q, k, v = qkv()
    for mask in (None, trailing_mask([30, 12])):
        torch.testing.assert_close(attend(q, k, v, mask), exact_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)


def test_kernels_missing_here_fail_loudly():
    q, k, v = qkv()
    with pytest.raises(RuntimeError):  # no memory-efficient kernel on the CPU
        candidate("efficient")(q, k, v, None)


def test_the_trial_timer_waits_for_the_gpu_the_attention_ran_on(monkeypatch):
    # --device cuda:1 (a server on a second GPU): the current device stays cuda:0, and waiting for it would time
    # the kernel launches only, so that `auto` chose by launch overhead.
    synced = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    out = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda", 1))  # what the call returned
    attention_trials.synchronized_timer("sdpa", lambda: out)
    assert synced == [torch.device("cuda", 1)]


def test_the_trial_holds_one_candidate_output_at_a_time():
    # Before: the timer kept the previous call's output bound while the next call made its own, two full
    # [B, H, L, D] outputs next to q, k, v in the attention phase, where the planner counts one.
    alive, most = [], 0

    def tracked(q, k, v, mask):
        nonlocal most
        out = sdpa_attention(q, k, v, mask)
        alive.append(weakref.ref(out))
        most = max(most, sum(ref() is not None for ref in alive))
        return out

    auto = AutoAttention({"a": tracked, "b": tracked}, timer=attention_trials.synchronized_timer)
    q = torch.randn(1, 2, 600, 64)
    auto(q, q, q, None)
    assert len(alive) > 4 and most == 1


def timings(**ms: float):
    calls = []

    def timer(name, call):
        calls.append(name)
        call()
        return ms[name] / 1e3

    return timer, calls


def test_auto_picks_the_fastest_and_keeps_it_per_shape():
    timer, timed = timings(slow=3.0, fast=1.0, medium=2.0)
    used = []

    def tagged(name):
        return lambda q, k, v, mask: used.append(name) or sdpa_attention(q, k, v, mask)

    auto = AutoAttention({n: tagged(n) for n in ("slow", "fast", "medium")}, timer)
    q, k, v = qkv()
    mask = trailing_mask([30, 9])
    out = auto(q, k, v, mask)
    torch.testing.assert_close(out, sdpa_attention(q, k, v, mask))
    assert sorted(timed) == ["fast", "medium", "slow"] and used[-1] == "fast"
    used.clear()
    auto(q, k, v, mask)  # same shape: no new trial
    assert len(timed) == 3 and used == ["fast"]
    auto(*qkv(lk=40), None)  # a new shape: a new trial
    assert len(timed) == 6 and len(auto.trials) == 2
    assert auto.describe().startswith("auto: fast at 30 keys (fast 1.0 ms, medium 2.0 ms, slow 3.0 ms)")


def test_auto_drops_failing_and_disagreeing_candidates():
    timer, _ = timings(broken=0.1, wrong=0.2, right=5.0)

    def broken(q, k, v, mask):
        raise RuntimeError("No available kernel")

    def wrong(q, k, v, mask):
        return sdpa_attention(q, k, v, None)  # ignores the mask: not the same attention

    auto = AutoAttention({"broken": broken, "wrong": wrong, "right": sdpa_attention}, timer)
    q, k, v = qkv()
    auto(q, k, v, trailing_mask([30, 5]))
    (trial,) = auto.trials.values()
    assert trial.best == "right" and set(trial.dropped) == {"broken", "wrong"}
    assert "No available kernel" in trial.dropped["broken"] and "differs" in trial.dropped["wrong"]
    assert "broken dropped" in auto.describe()


def test_auto_checks_the_last_query_rows_of_the_whole_call():
    """A kernel wrong only in the final partial query tile (the bug class of a sequence length that is not a tile
    multiple) is dropped: the trial checks the last rows too, in a call over the whole sequence."""
    timer, _ = timings(tail_bug=0.1, right=5.0)
    seen = []

    def tail_bug(q, k, v, mask):
        seen.append(q.shape[2])
        out = sdpa_attention(q, k, v, mask)
        out[:, :, -3:] = 0  # the last 3 of 300 rows: outside the first CHECK_ROWS
        return out

    auto = AutoAttention({"tail_bug": tail_bug, "right": sdpa_attention}, timer)
    q, k, v = qkv(lq=300, lk=40)
    auto(q, k, v, trailing_mask([40, 33], lk=40))
    (trial,) = auto.trials.values()
    assert trial.best == "right" and "float32" in trial.dropped["tail_bug"]
    assert set(seen) == {300}  # never a slice of the queries: the kernel runs with the run's own tiling


def test_checked_rows_cover_both_ends():
    assert checked_rows(100).tolist() == list(range(100))
    rows = checked_rows(1000).tolist()
    assert rows[:128] == list(range(128)) and rows[128:] == list(range(872, 1000))


@pytest.mark.parametrize("key_chunk", [4096, 7])  # one chunk; chunks that split the keys and the mask unevenly
def test_float32_reference_is_attention_in_float32(key_chunk):
    q, k, v = (t.to(torch.bfloat16) for t in qkv(lq=10))
    mask = trailing_mask([30, 17])
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask)
    got = float32_attention(q, k, v, mask, key_chunk)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_a_masked_call_gets_its_own_trial_after_an_unmasked_one_of_the_same_shape():
    # A candidate that ignores the mask is right without one: it may win the unmasked trial, never a masked call.
    timer, _ = timings(maskless=0.1, right=5.0)

    def maskless(q, k, v, mask):
        return sdpa_attention(q, k, v, None)

    auto = AutoAttention({"maskless": maskless, "right": sdpa_attention}, timer)
    q, k, v = qkv()
    mask = trailing_mask([30, 9])
    auto(q, k, v, None)
    torch.testing.assert_close(auto(q, k, v, mask), sdpa_attention(q, k, v, mask))
    assert [trial.best for trial in auto.trials.values()] == ["maskless", "right"]


def test_auto_keeps_bf16_candidates_that_differ_by_bf16_rounding_only():
    # On a GPU the run is in bf16: exact kernels then differ from float32 attention by bf16 rounding, not more.
    timer, _ = timings(sdpa=1.0)
    auto = AutoAttention({"sdpa": sdpa_attention}, timer)
    q, k, v = (t.to(torch.bfloat16) for t in qkv())
    auto(q, k, v, trailing_mask([30, 9]))
    (trial,) = auto.trials.values()
    assert trial.dropped == {} and trial.best == "sdpa"


def test_auto_drops_a_candidate_that_is_only_slightly_wrong():
    # "Agrees" means up to rounding: a kernel with its softmax scale 1 % off is not exact attention.
    timer, _ = timings(close=0.1, right=5.0)

    def close(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.01 / q.shape[-1] ** 0.5)

    auto = AutoAttention({"close": close, "right": sdpa_attention}, timer)
    auto(*qkv(), trailing_mask([30, 5]))
    (trial,) = auto.trials.values()
    assert trial.best == "right" and "differs" in trial.dropped["close"]


@pytest.fixture(scope="module")
def dit_like_bf16_call() -> tuple[torch.Tensor, ...]:
    """A bf16 joint-attention call at a Motif-like length: 4,246 keys with DiT-like q, k, v (attention peaks near
    the diagonal; outlier channels), the last 120 keys of batch row 0 masked (a short prompt's padding)."""
    q, k, v = dit_like_qkv(2, 1, 4246, 128, seed=0, dtype=torch.bfloat16)
    mask = trailing_padding(2, 4246, 120)
    mask[1] = True
    return q, k, v, mask


def bf16_bug_candidates() -> dict[str, object]:
    def exact(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def ignores_the_mask(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v)

    def scale_1_percent_off(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.01 / q.shape[-1] ** 0.5)

    return {"ignores_the_mask": ignores_the_mask, "scale_1_percent_off": scale_1_percent_off, "exact": exact}


def test_auto_drops_bf16_candidates_that_are_wrong_by_more_than_bf16_rounding(dit_like_bf16_call):
    # Before: a fixed tolerance (2e-2 of the output's largest value) kept both bugs in bf16 at Motif's lengths, and
    # the faster one (ignoring the mask lets SDPA run flash) would have been chosen. Now each candidate is held to
    # twice the row error of torch's own bf16 attention on the checked rows.
    q, k, v, mask = dit_like_bf16_call
    ms = {"ignores_the_mask": 0.1, "scale_1_percent_off": 0.2, "exact": 5.0}
    auto = AutoAttention(bf16_bug_candidates(), lambda name, call: ms[name] / 1e3)
    auto(q, k, v, mask)
    (trial,) = auto.trials.values()
    assert trial.best == "exact" and trial.dropped == {
        "ignores_the_mask": "output differs from float32 attention",
        "scale_1_percent_off": "output differs from float32 attention",
    }


def test_the_bf16_reference_goes_a_few_rows_at_a_time_and_equals_sdpa_on_all_rows(monkeypatch):
    # The math kernel holds every score: the trial's reference keeps them to `elements` per call (tens of MB at
    # Motif's lengths), one head and a few rows at a time, and gets the same answer.
    q, k, v = (t.to(torch.bfloat16) for t in qkv(lq=40, lk=300))
    mask = trailing_mask([300, 170], lk=300)
    calls = []
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        whole = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    sdpa = F.scaled_dot_product_attention

    def counted(q, k, v, attn_mask):
        calls.append(q.shape[1] * q.shape[2] * k.shape[2] * q.shape[0])
        return sdpa(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(attention_trials.F, "scaled_dot_product_attention", counted)
    chunked = attention_trials.dtype_attention(q, k, v, mask, elements=2 * 300 * 7)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)
    assert max(calls) <= 2 * 300 * 7 and len(calls) == 2 * 6  # 2 heads, 40 rows by 7


@pytest.mark.parametrize(
    ("name", "taken"), [("ignores_the_mask", False), ("scale_1_percent_off", False), ("exact", True)]
)
def test_a_remembered_bf16_choice_is_taken_again_only_if_it_agrees(dit_like_bf16_call, name, taken, tmp_path):
    # The check of an earlier run's choice is the trial's: a wrong kernel remembered (e.g. under an older check) is
    # not taken again, an exact one is.
    q, k, v, mask = dit_like_bf16_call
    key = (tuple(q.shape), tuple(k.shape), q.dtype, q.device, tuple(mask.shape))
    memory = RememberedChoices("env", tmp_path / "choices.json")
    memory.put(_shape_text(key), name)
    auto = AutoAttention(bf16_bug_candidates(), lambda name, call: 1e-3, memory)
    assert (auto.remembered(key, q, k, v, mask) is not None) == taken


def test_auto_with_the_real_cpu_kernels_runs_the_model_exactly():
    model = tiny_transformer()
    x = inputs(image=5, image_dim=20)
    with torch.no_grad():
        plain = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    timer, _ = timings(flash=1.0, efficient=0.5, sdpa=2.0)  # efficient would win, but it has no CPU kernel
    auto = AutoAttention(
        {"flash": candidate("flash"), "efficient": candidate("efficient"), "sdpa": sdpa_attention}, timer
    )
    apply_attention_backend(model, auto)
    with torch.no_grad():
        got = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    torch.testing.assert_close(got, plain, rtol=1e-5, atol=1e-5)
    assert {trial.best for trial in auto.trials.values()} == {"flash"}
    assert len(auto.trials) >= 3  # joint, cross-attention and the DDT decoder's shapes: one trial each


def test_backend_names_and_the_cpu_default():
    assert attention_backend("auto", "cpu").describe() == "sdpa"  # no trial on the CPU
    assert isinstance(attention_backend("flash", "cpu"), FixedAttention)
    with pytest.raises(ConfigError, match="attention backend"):
        attention_backend("fastest", "cpu")


def test_apply_keeps_a_sparse_decoder():
    model = tiny_transformer()
    backend = FixedAttention("flash")
    apply_attention_backend(model, backend)
    assert model.ops.attention is backend and model.ops.decoder_attention is backend
    from motif_lite.runtime.kernels import SparsityConfig, select_ops

    model.ops = select_ops("torch", SparsityConfig(latent_frames=3))
    sparse = model.ops.decoder_attention
    apply_attention_backend(model, backend)
    assert model.ops.attention is backend and model.ops.decoder_attention is sparse


def test_sdpa_reference_is_pytorch_sdpa():
    q, k, v = qkv()
    torch.testing.assert_close(candidate("sdpa")(q, k, v, None), F.scaled_dot_product_attention(q, k, v))


def fake_fa3(returns_tuple: bool) -> types.ModuleType:
    """A stand-in for FlashAttention-3's package: its `flash_attn_func` contract ([B, L, H, D] in and out, head dims
    contiguous), computed by SDPA; it records the shapes it was given."""
    module = types.ModuleType("flash_attn_interface")
    module.seen = []

    def flash_attn_func(q, k, v):
        assert q.stride(-1) == 1 and k.stride(-1) == 1 and v.stride(-1) == 1
        module.seen.append(tuple(q.shape))
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
        return (out, None) if returns_tuple else out

    module.flash_attn_func = flash_attn_func
    return module


@pytest.mark.parametrize("returns_tuple", [False, True], ids=["out", "out-and-lse"])
def test_fa3_where_installed_equals_sdpa(monkeypatch, returns_tuple):
    fa3 = fake_fa3(returns_tuple)
    monkeypatch.setitem(sys.modules, "flash_attn_interface", fa3)
    attend = candidate("fa3")
    q, k, v = qkv()  # B 2, H 2, Lq 24, Lk 30, D 16
    for mask in (None, trailing_mask([30, 12])):
        torch.testing.assert_close(attend(q, k, v, mask), sdpa_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)
    assert fa3.seen[0] == (2, 24, 2, 16)  # FA3's layout: [B, L, H, D]
    assert fa3.seen[1:] == [(1, 24, 2, 16)] * 2  # masked: one row at a time over its valid keys
    assert "fa3" in auto_candidates(triton_ok=False)


@pytest.mark.parametrize("backend", ["auto", "flash", "fa3"])
def test_the_masks_a_backend_kept_for_a_run_go_at_the_models_end_run(backend, monkeypatch):
    # They stayed until the next run (the caller's masks, on the device, and the bool forms built from them) after
    # `end_run` had let the model's own go.
    monkeypatch.setitem(sys.modules, "flash_attn_interface", fake_fa3(returns_tuple=False))
    if backend == "auto":
        rows = candidate("flash")  # takes bool masks: `auto` converts them for it, and it counts their valid keys
        attention = AutoAttention({"flash": rows, "sdpa": sdpa_attention}, timings(flash=1.0, sdpa=2.0)[0])
        kept = [attention.bool_masks.kept.seen, rows.key_lengths.kept.seen]
    else:
        attention = FixedAttention(backend)
        kept = [attention.attend.key_lengths.kept.seen]
    model = tiny_transformer()
    apply_attention_backend(model, attention)
    x = inputs(image=5, image_dim=20)
    with torch.no_grad():
        first = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
        assert all(kept), kept  # kept for the run's next forwards
        model.end_run()
        assert not any(kept), kept
        again = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    assert torch.equal(first, again)  # built again as the next run's first forward builds them


def test_fa3_is_offered_only_where_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn_interface", None)  # an import of it fails
    assert "fa3" not in auto_candidates(triton_ok=False)
    with pytest.raises(ConfigError, match="fa3 needs FlashAttention-3's flash_attn_interface package"):
        attention_backend("fa3", "cpu")


# ------------------------------------------------------------------------- choices remembered across runs


def tagged_candidates(names, used):
    return {
        name: (lambda q, k, v, mask, name=name: used.append(name) or sdpa_attention(q, k, v, mask)) for name in names
    }


def test_a_later_run_takes_the_remembered_choice_without_timing(tmp_path):
    """Two kernels within noise of each other could swap between runs (and round differently): a second run on
    the same GPU and software takes the first run's choice after one checked call, whatever its timings say."""
    path = tmp_path / "choices.json"
    q, k, v = qkv()
    mask = trailing_mask([30, 9])
    first_timer, first_timed = timings(a=1.0, b=1.01)
    first = AutoAttention(tagged_candidates("ab", []), first_timer, RememberedChoices("GPU X; torch 1", path))
    first(q, k, v, mask)
    assert first_timed == ["a", "b"] and first.trials[next(iter(first.trials))].best == "a"

    later_timer, later_timed = timings(a=1.01, b=1.0)  # the noise now favours b
    used = []
    later = AutoAttention(tagged_candidates("ab", used), later_timer, RememberedChoices("GPU X; torch 1", path))
    torch.testing.assert_close(later(q, k, v, mask), sdpa_attention(q, k, v, mask))
    assert later_timed == [] and used == ["a", "a"]  # the checked call, then the call itself
    assert later.describe() == "auto: a at 30 keys (as an earlier run on this GPU chose)"
    # Negative controls: another environment (GPU, versions, candidates) or another shape times again.
    other_timer, other_timed = timings(a=1.01, b=1.0)
    other = AutoAttention(tagged_candidates("ab", []), other_timer, RememberedChoices("GPU Y; torch 1", path))
    other(q, k, v, mask)
    other(*qkv(lk=40), None)
    assert other_timed == ["a", "b", "a", "b"] and {t.best for t in other.trials.values()} == {"b"}


def test_a_remembered_choice_that_fails_here_is_timed_again(tmp_path):
    """E.g. out of memory in a tighter plan than the run that chose it: the trial runs and its choice is kept."""
    path = tmp_path / "choices.json"
    q, k, v = qkv()
    timer, _ = timings(a=1.0, b=2.0)
    AutoAttention(tagged_candidates("ab", []), timer, RememberedChoices("env", path))(q, k, v, None)

    def out_of_memory(q, k, v, mask):
        raise torch.OutOfMemoryError("CUDA out of memory")

    timer, timed = timings(b=2.0)
    later = AutoAttention({"a": out_of_memory, "b": sdpa_attention}, timer, RememberedChoices("env", path))
    torch.testing.assert_close(later(q, k, v, None), sdpa_attention(q, k, v, None))
    assert timed == ["b"] and "a dropped: OutOfMemoryError" in later.describe()
    assert RememberedChoices("env", path).get(_shape_text(next(iter(later.trials)))) == "b"


def auto_with_a_failing_triton(timer, memory=None) -> tuple[AutoAttention, FallbackOp, list[str]]:
    """`auto` over SDPA and our Triton kernel as `auto_candidates` builds it, whose kernel fails (as one with no
    kernel for this GPU or shape, or a Triton launch that fails under WSL); the kernel's attempts are counted."""
    pytest.importorskip("triton")
    candidates = auto_candidates(triton_ok=True, device=torch.device("cpu"))
    triton, attempts = candidates["triton"], []

    def failing_kernel(q, k, v, mask):
        attempts.append("triton")
        raise RuntimeError("no kernel for this shape")

    triton.kernel = failing_kernel
    return AutoAttention({"sdpa": candidates["sdpa"], "triton": triton}, timer, memory), triton, attempts


def test_a_failing_triton_candidate_is_dropped_not_timed_as_its_fallback():
    """docs/kernels.md: a candidate that raises is dropped with its reason. Our Triton candidate must not swallow
    its failure into an SDPA fallback: that would be timed (and perhaps chosen) as "triton", try the broken kernel
    on every call, and list a fallback in the run summary for a kernel the run does not use."""
    q, k, v = qkv()
    timer, timed = timings(sdpa=2.0, triton=1.0)  # were it timed, the Triton candidate would win
    auto, triton, attempts = auto_with_a_failing_triton(timer)
    model = torch.nn.Module()
    model.ops = dataclasses.replace(TORCH_OPS, attention=auto)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        for _ in range(5):
            torch.testing.assert_close(auto(q, k, v, None), sdpa_attention(q, k, v, None))
    (trial,) = auto.trials.values()
    assert timed == ["sdpa"] and trial.best == "sdpa"
    assert trial.dropped == {"triton": "RuntimeError: no kernel for this shape"}
    assert attempts == ["triton"]  # the trial's one call, never again
    assert kernel_ops(model) == [triton] and fallbacks(model) == {}


def auto_with_a_choice_failing_later(
    name: str, failure: BaseException, strict: bool, memory: RememberedChoices | None = None
) -> tuple[AutoAttention, list]:
    """`auto` over SDPA and candidate `name`, right and fastest on the trial's call (every key kept), which raises
    `failure` on a later call of the same shapes that pads keys (a call the trial did not stand for): a `flash` as
    FlashAttention fails where it has no kernel, or our Triton kernel as `auto_candidates` builds it (strict) with
    that kernel inside; `strict`: `--kernels triton`. The kernel's attempts are counted by whether keys were padded."""
    attempts = []

    def fails_on_padded_keys(q, k, v, mask):
        padded = not bool(mask.all())
        attempts.append("padded" if padded else "full")
        if padded:
            raise failure
        return sdpa_attention(q, k, v, mask)

    chosen = fails_on_padded_keys
    if name == "triton":
        pytest.importorskip("triton")
        chosen = auto_candidates(triton_ok=True, device=torch.device("cpu"))["triton"]
        chosen.kernel = fails_on_padded_keys
    timer, _ = timings(sdpa=2.0, **{name: 1.0})
    return AutoAttention({"sdpa": sdpa_attention, name: chosen}, timer, memory, strict), attempts


def model_with(attention) -> torch.nn.Module:
    model = torch.nn.Module()
    model.ops = dataclasses.replace(TORCH_OPS, attention=attention)
    return model


@pytest.mark.parametrize(
    ("name", "strict"),
    [("flash", False), ("triton", False), ("flash", True)],  # --kernels triton is about our Triton kernels only
)
def test_a_chosen_kernel_that_fails_later_falls_back_from_then_on(tmp_path, name: str, strict: bool):
    # --kernels auto: before, the run stopped with the kernel's raw error (Triton's: a KernelFailedError whose
    # advice named --kernels as if the user had forced Triton). Now: one warning, SDPA from then on, in the summary.
    q, k, v = qkv()
    full, padded = trailing_mask([30, 30]), trailing_mask([30, 21])
    memory = RememberedChoices("env", tmp_path / "choices.json")
    longer = qkv(lk=40)
    memory.put(_shape_text((tuple(longer[0].shape), tuple(longer[1].shape), torch.float32, q.device, None)), name)
    auto, attempts = auto_with_a_choice_failing_later(name, RuntimeError("no kernel for padded keys"), strict, memory)
    model = model_with(auto)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(q, k, v, full)
    trial_calls = ["full"] * 3  # the trial's checked and timed call, then the call itself
    assert next(iter(auto.trials.values())).best == name and attempts == trial_calls
    with pytest.warns(RuntimeWarning) as caught:
        outs = [auto(q, k, v, padded) for _ in range(3)]
        auto(q, k, v, full)  # the kernel worked here, but a run does not go back to it
    reason = "the kernel failed (RuntimeError: no kernel for padded keys)"
    assert [str(w.message) for w in caught] == [
        f"motif-lite: {name} attention falls back to torch's SDPA from now on (later runs of this pipeline too): "
        f"{reason}"
    ]
    assert all(torch.equal(out, sdpa_attention(q, k, v, padded)) for out in outs)
    assert attempts == [*trial_calls, "padded"]  # not tried again
    assert fallbacks(model) == {f"{name} attention": reason}
    assert auto.describe().endswith(f"({name} 1.0 ms, sdpa 2.0 ms), then torch's attention: it failed after its trial")
    auto(*longer, None)  # a new shape's trial drops it, as remembered as it may be
    assert list(auto.trials.values())[-1].dropped == {name: "failed after an earlier trial chose it"}
    assert attempts == [*trial_calls, "padded"]


def test_what_auto_reports_is_the_runs_own_while_its_trials_and_given_up_kernels_stay():
    # A later run on the same pipeline (a server's next job) reported every shape and every given-up kernel of the
    # runs before it: its summary named a kernel it never chose. `begin_run` starts each run's report; what `auto`
    # learned stays (no trial made again, no given-up kernel tried again).
    q, k, v = qkv()
    full, padded = trailing_mask([30, 30]), trailing_mask([30, 21])
    auto, attempts = auto_with_a_choice_failing_later("flash", RuntimeError("no kernel for padded keys"), False)
    model = model_with(auto)
    reason = "the kernel failed (RuntimeError: no kernel for padded keys)"
    begin_run(model)  # job 1: flash chosen at 30 keys, then given up
    auto(q, k, v, full)
    with pytest.warns(RuntimeWarning, match="flash attention falls back"):
        auto(q, k, v, padded)
    assert fallbacks(model) == {"flash attention": reason} and auto.describe().startswith("auto: flash at 30 keys")
    begin_run(model)  # job 2, at another shape: nothing of job 1 in its report
    assert auto.describe() == "auto (no attention call in this run yet)" and fallbacks(model) == {}
    longer = qkv(lk=40)
    auto(*longer, None)
    dropped = "flash dropped: failed after an earlier trial chose it"
    assert auto.describe() == f"auto: sdpa at 40 keys (sdpa 2.0 ms; {dropped})"
    assert fallbacks(model) == {}
    begin_run(model)  # job 3, at job 1's shape: its trial is kept, flash stays given up, and SDPA runs in its place
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, in job 1
        torch.testing.assert_close(auto(q, k, v, full), sdpa_attention(q, k, v, full))
    assert len(auto.trials) == 2 and attempts == ["full", "full", "full", "padded"]  # not timed or tried again
    assert fallbacks(model) == {"flash attention": reason}
    assert auto.describe().endswith("then torch's attention: it failed after its trial")


def test_a_chosen_triton_kernel_that_fails_later_stops_the_run_under_kernels_triton():
    q, k, v = qkv()
    auto, attempts = auto_with_a_choice_failing_later("triton", RuntimeError("no kernel for padded keys"), True)
    kernels_error = r"Triton attention failed \(RuntimeError: no kernel for padded keys\); --kernels triton never"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        auto(q, k, v, trailing_mask([30, 30]))
        for _ in range(2):  # and each call tries the kernel: nothing was given up
            with pytest.raises(KernelFailedError, match=kernels_error):
                auto(q, k, v, trailing_mask([30, 21]))
    assert attempts == [*["full"] * 3, "padded", "padded"] and fallbacks(model_with(auto)) == {}


@pytest.mark.parametrize("name", ["flash", "triton"])
@pytest.mark.parametrize("strict", [False, True])
def test_out_of_memory_in_a_chosen_kernel_stays_out_of_memory(name: str, strict: bool):
    # Not a kernel failure: the run's out-of-memory advice is the answer, under --kernels auto and triton alike.
    q, k, v = qkv()
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    auto, attempts = auto_with_a_choice_failing_later(name, oom, strict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(q, k, v, trailing_mask([30, 30]))
        for _ in range(2):
            with pytest.raises(torch.OutOfMemoryError) as caught:
                auto(q, k, v, trailing_mask([30, 21]))
            assert caught.value is oom
    assert attempts == [*["full"] * 3, "padded", "padded"] and fallbacks(model_with(auto)) == {}


def test_plain_sdpa_chosen_and_failing_later_stops_the_run():
    # It is the fallback: there is nothing to give it up for, so its own error is the answer.
    q, k, v = qkv()

    def sdpa_failing_on_padded_keys(q, k, v, mask):
        if not bool(mask.all()):
            raise RuntimeError("no kernel at all")
        return sdpa_attention(q, k, v, mask)

    auto = AutoAttention({"sdpa": sdpa_failing_on_padded_keys}, timings(sdpa=1.0)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        auto(q, k, v, trailing_mask([30, 30]))
        with pytest.raises(RuntimeError, match="no kernel at all"):
            auto(q, k, v, trailing_mask([30, 21]))
    assert fallbacks(model_with(auto)) == {} and "then torch's attention" not in auto.describe()


def test_auto_attention_is_strict_after_its_trial_only_under_kernels_triton(monkeypatch):
    # preflight passes strict=(--kernels == "triton"): `auto` must keep it for failures after its trial.
    from motif_lite.gpus import NVIDIA, GpuFacts

    monkeypatch.setattr(attention_module, "gpu_facts", lambda device: GpuFacts(NVIDIA, "NVIDIA H100", (9, 0)))
    monkeypatch.setattr(attention_module, "environment", lambda device, names: "env")
    for strict in (False, True):
        backend = attention_backend("auto", "cuda", strict=strict)
        assert isinstance(backend, AutoAttention) and backend.strict is strict


def test_a_remembered_triton_choice_whose_kernel_fails_here_is_timed_again(tmp_path):
    path = tmp_path / "choices.json"
    q, k, v = qkv()
    timer, _ = timings(sdpa=2.0, triton=1.0)
    AutoAttention({"sdpa": sdpa_attention, "triton": sdpa_attention}, timer, RememberedChoices("env", path))(
        q, k, v, None
    )  # an earlier run, where our kernel worked, chose it
    timer, timed = timings(sdpa=2.0, triton=1.0)
    auto, _, attempts = auto_with_a_failing_triton(timer, RememberedChoices("env", path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(q, k, v, None)
        auto(q, k, v, None)
    (trial,) = auto.trials.values()
    assert trial.remembered is None and timed == ["sdpa"] and "triton dropped: RuntimeError" in auto.describe()
    assert attempts == ["triton", "triton"]  # the remembered choice's check, then the trial's call
    assert RememberedChoices("env", path).get(_shape_text(next(iter(auto.trials)))) == "sdpa"


def test_a_cache_that_cannot_be_written_or_read_only_costs_a_trial(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    memory = RememberedChoices("env", blocked / "choices.json")  # its folder is a file: nothing can be written
    timer, timed = timings(a=1.0)
    auto = AutoAttention(tagged_candidates("a", []), timer, memory)
    auto(*qkv(), None)
    assert timed == ["a"] and memory.get("anything") is None
    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    assert RememberedChoices("env", damaged).get("anything") is None
    RememberedChoices("env", damaged).put("shape", "a")  # replaced whole by a valid file
    assert RememberedChoices("env", damaged).get("shape") == "a"


@pytest.mark.parametrize(
    ("gpu", "capability", "arch"), [("NVIDIA H200", (9, 0), "sm_90"), ("NVIDIA A10", (8, 6), "sm_86")]
)
def test_the_environment_names_the_gpu_the_software_and_the_candidates(monkeypatch, gpu, capability, arch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: gpu)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability)
    described = environment(torch.device("cuda", 0), ["sdpa", "cudnn"])
    assert described.startswith(f"{gpu} ({arch}); torch ") and described.endswith("; candidates sdpa, cudnn")
    assert f"torch {torch.__version__}" in described and "cuDNN " in described and "triton " in described


def installed_fa3(folder, version: str) -> None:
    """A FlashAttention-3 build in `folder` (on sys.path) as pip leaves one: its module and a dist-info naming it."""
    (folder / "flash_attn_interface.py").write_text("")
    info = folder / "flash_attn_3-0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: flash_attn_3\nVersion: {version}\n")
    (info / "RECORD").write_text("flash_attn_interface.py,,\n")


def test_the_environment_names_the_fa3_build_where_it_is_a_candidate(tmp_path, monkeypatch):
    # FA3 is built apart from torch: a rebuilt FA3 keeps torch's, CUDA's and Triton's versions but may round
    # differently, so its remembered choices must not be taken again.
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_fa3(tmp_path, "3.0.0b1")
    cuda = torch.device("cuda", 0)
    first = environment(cuda, ["sdpa", "fa3"])
    assert first.endswith(", FlashAttention-3 flash_attn_3 3.0.0b1; candidates sdpa, fa3")
    assert "FlashAttention-3" not in environment(cuda, ["sdpa", "cudnn"])  # keys without FA3 stay as they were
    installed_fa3(tmp_path, "3.0.1")
    assert environment(cuda, ["sdpa", "fa3"]) == first.replace("3.0.0b1", "3.0.1")


@pytest.mark.parametrize(
    ("error", "message"),
    [("ImportError", "undefined symbol: _ZN3c10"), ("RuntimeError", "operator flash_attn_3::fwd already exists")],
)
def test_a_broken_fa3_install_is_not_offered(tmp_path, monkeypatch, error, message):
    # A package that is there but fails to import (an extension built for another torch or CUDA) is left out.
    # Before, a failure other than ImportError (an op registration) stopped every `auto` run on a GPU.
    (tmp_path / "flash_attn_interface.py").write_text(f"raise {error}({message!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn_interface", raising=False)
    assert "fa3" not in auto_candidates(triton_ok=False)
    with pytest.raises(ConfigError, match="fa3 needs") as caught:
        attention_backend("fa3", "cpu")
    assert f"cannot be imported here ({error}: {message})" in str(caught.value)  # why: it is there, but broken


# ------------------------------------------------------------------------- fixed kernels this machine lacks


@pytest.mark.parametrize("name", ["cudnn", "efficient", "triton"])
def test_a_fixed_kernel_the_cpu_lacks_is_refused_before_any_call(name):
    # Before: a RuntimeError traceback at the first step, after loading ("No viable backend ... math kernel"); for
    # triton, a run that fell back to SDPA at every call while its summary named triton as the attention that ran.
    with pytest.raises(ConfigError, match=f"--attention-backend {name} is a CUDA kernel: on the CPU PyTorch has sdpa"):
        attention_backend(name, "cpu", dtype=torch.bfloat16)
    for runs_here in ("sdpa", "flash"):
        assert attention_backend(runs_here, "cpu", dtype=torch.bfloat16).describe() == runs_here


def test_a_fixed_kernel_a_gpu_lacks_names_pytorchs_reason(monkeypatch):
    # What a GPU before compute capability 8.0 does with flash: a warning saying why, then "No available kernel".
    probed = []

    def no_flash_here(q, k, v, mask):
        probed.append((q.dtype, mask is not None))
        reason = (
            "Flash attention only supports gpu architectures in the range [sm80, sm90]."
            " Attempting to run on a sm 7.5 gpu."
        )
        warnings.warn(reason, UserWarning, stacklevel=2)
        raise RuntimeError("No available kernel. Aborting execution.")

    monkeypatch.setattr(attention_module, "candidate", lambda name: no_flash_here)
    with pytest.raises(ConfigError) as caught:
        attention_module.check_backend_runs("flash", "meta", torch.float16)
    assert str(caught.value) == (
        "--attention-backend flash cannot run on meta in float16 (Flash attention only supports gpu architectures in "
        "the range [sm80, sm90]. Attempting to run on a sm 7.5 gpu.); choose auto, which times the kernels that run "
        "here, or sdpa"
    )
    assert probed == [(torch.float16, False)]  # in the run's dtype
    monkeypatch.setattr(attention_module, "candidate", lambda name: lambda q, k, v, mask: probed.append(mask) or q)
    attention_module.check_backend_runs("flash", "meta", torch.float16)  # both calls pass: nothing to say
    assert probed[1] is None and probed[2] is not None  # without and with a key mask (efficient takes it)


def test_the_triton_backend_without_triton_is_a_user_error(monkeypatch):
    # Before: ModuleNotFoundError ("No module named 'triton'") with a traceback while loading.
    monkeypatch.setitem(sys.modules, "motif_lite.kernels.attention", None)  # its import fails, as without triton
    with pytest.raises(ConfigError, match="--attention-backend triton needs Triton, which cannot be imported here"):
        attention_backend("triton", "cuda")  # no GPU needed: the import fails first


@pytest.mark.parametrize(("version", "refused"), [("3.2.0", True), ("3.3.1", False)])
def test_the_triton_backend_with_a_triton_too_old_for_the_gpu_is_refused_before_loading(monkeypatch, version, refused):
    # Before: with --kernels torch or auto (which only warn that the Triton ops are off), `--attention-backend triton`
    # still compiled our kernel at the first step, and Triton 3.2's LLVM aborts the process for an RTX 50xx.
    import triton

    from motif_lite.preflight import check_speed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (12, 0))
    monkeypatch.setattr(triton, "__version__", version)
    if not refused:  # negative control: a Triton that has the target keeps the fixed kernel
        assert check_speed(torch.device("cuda"), "torch", "triton", None)[1].describe().startswith("triton")
        return
    for kernels in ("torch", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # auto's own note that the Triton ops are off
            with pytest.raises(
                ConfigError, match=r"triton is our Triton kernel: Triton 3\.2\.0 cannot compile .* 12\.0"
            ):
                check_speed(torch.device("cuda"), kernels, "triton", None)


@pytest.mark.parametrize("entry", [{"name": "a"}, ["a"], 3, None], ids=["dict", "list", "number", "null"])
def test_a_damaged_entry_in_the_choices_file_only_costs_a_trial(tmp_path, entry):
    # Before: a hand-edited or damaged entry that is not a name stopped the run at its first attention call
    # (TypeError: unhashable type).
    q, k, v = qkv()
    key = (tuple(q.shape), tuple(k.shape), q.dtype, q.device, None)
    path = tmp_path / "choices.json"
    path.write_text(json.dumps({"env": {_shape_text(key): entry}}))
    timer, timed = timings(a=1.0)
    auto = AutoAttention(tagged_candidates("a", []), timer, RememberedChoices("env", path))
    torch.testing.assert_close(auto(q, k, v, None), sdpa_attention(q, k, v, None))
    assert timed == ["a"] and RememberedChoices("env", path).get(_shape_text(key)) == "a"  # timed and rewritten


def test_a_fixed_triton_backend_is_strict_under_kernels_triton():
    # --kernels triton promises no fallback: the fixed Triton attention kernel fails the run instead of quietly
    # running SDPA (here on CPU tensors, which the kernel does not take, as a stand-in for a kernel that fails on a
    # GPU); without it, SDPA runs with a warning.
    from motif_lite.runtime.kernels import KernelFailedError

    q, k, v = qkv()
    with pytest.raises(KernelFailedError, match="--kernels triton never falls back"):
        attention_module.FixedAttention("triton", strict=True)(q, k, v, None)
    with pytest.warns(RuntimeWarning):
        out = attention_module.FixedAttention("triton")(q, k, v, None)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


def test_auto_leaves_our_triton_attention_out_of_its_trial_before_ampere():
    # On Turing (T4, RTX 20xx) Triton compiles attention without tensor cores, 40-120 s per shape: a trial there
    # spent minutes to lose to SDPA. From Ampere on, and where the GPU is not known, it is tried.
    from motif_lite.gpus import NVIDIA, GpuFacts

    t4 = GpuFacts(NVIDIA, "Tesla T4", capability=(7, 5))
    rtx_3060 = GpuFacts(NVIDIA, "NVIDIA GeForce RTX 3060", capability=(8, 6))
    assert "triton" not in auto_candidates(triton_ok=True, gpu=t4)
    assert "sdpa" in auto_candidates(triton_ok=True, gpu=t4)
    assert "triton" in auto_candidates(triton_ok=True, gpu=rtx_3060)
    assert "triton" in auto_candidates(triton_ok=True, gpu=GpuFacts(NVIDIA, "NVIDIA A100", capability=(8, 0)))
    assert "triton" in auto_candidates(triton_ok=True)
