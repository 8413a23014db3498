"""Backend selection, the warn-once torch fallback, sparse decoder attention and apply_kernels (all in-process)."""

from __future__ import annotations

import dataclasses
import sys
import warnings

import pytest
import tiny_transformer as tiny
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q
from tiny_config import forward
from torch import nn

from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.kernels import patterns
from motif_lite.kernels.reference import expand_block_mask
from motif_lite.model.ops import TORCH_OPS, Ops, sdpa_attention
from motif_lite.runtime import kernels as rt
from motif_lite.weights.quant_linear import QuantizedLinear

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def test_torch_backend_is_the_reference() -> None:
    assert rt.select_ops("torch") is TORCH_OPS


@no_cuda
def test_auto_without_cuda_is_torch() -> None:
    assert rt.select_ops("auto") is TORCH_OPS


@no_cuda
def test_triton_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(rt.KernelBackendError, match="no CUDA device"):
        rt.select_ops("triton")


def test_unknown_backend_names_the_value() -> None:
    with pytest.raises(ConfigError, match="'cuda-fast'"):
        rt.select_ops("cuda-fast")


@pytest.mark.cuda
def test_triton_on_cuda_wraps_the_fused_norms_and_keeps_sdpa_for_dense_attention() -> None:
    ops = rt.select_ops("triton")
    assert isinstance(ops.layer_norm_modulate, rt.FallbackOp) and isinstance(ops.rms_norm_rope, rt.FallbackOp)
    assert ops.attention is TORCH_OPS.attention and ops.decoder_attention is TORCH_OPS.decoder_attention


def test_triton_ops_fall_back_on_cpu_with_one_warning() -> None:
    pytest.importorskip("triton")
    ops = rt.triton_ops()
    q, cos, sin = torch.randn(1, 2, 9, 8), torch.randn(5, 8), torch.randn(5, 8)
    weight = torch.randn(8)
    with pytest.warns(RuntimeWarning, match="rms_norm_rope falls back to torch: the inputs are not CUDA"):
        out = ops.rms_norm_rope(q, weight, 1e-6, cos, sin)
    torch.testing.assert_close(out, TORCH_OPS.rms_norm_rope(q, weight, 1e-6, cos, sin))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second call must not warn again
        ops.rms_norm_rope(q, weight, 1e-6, cos, sin)
    x, shift, scale = torch.randn(1, 4, 8), torch.randn(1, 8), torch.randn(1, 8)
    with pytest.warns(RuntimeWarning, match="layer_norm_modulate"):
        torch.testing.assert_close(
            ops.layer_norm_modulate(x, shift, scale), TORCH_OPS.layer_norm_modulate(x, shift, scale)
        )


def broken_kernel(*args, **kwargs):
    raise RuntimeError("no PTX for this card")


def test_failing_kernel_falls_back_once_and_remembers_why() -> None:
    # Arguments with no tensors take the kernel path, which lets this run without CUDA.
    op = rt.FallbackOp("add", broken_kernel, lambda a, b: a + b)
    assert op.fallback_reason is None and not op.warned
    with pytest.warns(RuntimeWarning, match="kernel failed .RuntimeError: no PTX for this card"):
        assert op(2, 3) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert op(4, 3) == 7
    assert op.warned and not rt.FallbackOp("add", broken_kernel, lambda a, b: a + b).warned  # the flag is per object
    assert op.fallback_reason == "the kernel failed (RuntimeError: no PTX for this card)" and op.fallback_calls == 2


def test_strict_op_fails_with_the_kernels_error() -> None:
    op = rt.FallbackOp("add", broken_kernel, lambda a, b: a + b, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning, no fallback
        with pytest.raises(rt.KernelFailedError, match="Triton add failed .RuntimeError: no PTX for this card") as err:
            op(2, 3)
    assert isinstance(err.value, MotifLiteError) and isinstance(err.value.__cause__, RuntimeError)
    assert op.fallback_reason is None
    # Strict means the kernel runs whatever the inputs: CPU tensors reach it too.
    seen = []
    strict = rt.FallbackOp("neg", lambda x: seen.append(x.device.type) or -x, lambda x: x, strict=True)
    assert torch.equal(strict(torch.ones(2)), -torch.ones(2)) and seen == ["cpu"]


@pytest.mark.parametrize("strict", [False, True])
def test_out_of_memory_in_a_kernel_stays_out_of_memory(strict: bool) -> None:
    """Neither wrapped as KernelFailedError ("triton") nor hidden by a fallback ("auto"): the command line and the
    server recognise it and give their out-of-memory advice."""
    from motif_lite.cli import _out_of_memory
    from motif_lite.server.worker import failure

    def kernel(x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    op = AnyDeviceOp("attention", kernel, torch.neg, strict=strict)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        with pytest.raises(torch.OutOfMemoryError) as err:
            op(torch.ones(2))
    assert type(err.value) is torch.OutOfMemoryError and op.fallback_reason is None and op.fallback_calls == 0
    assert _out_of_memory(err.value) and failure(err.value)[0] == "out_of_memory"


def test_working_kernel_is_not_a_fallback() -> None:
    op = rt.FallbackOp("add", lambda a, b: a + b, broken_kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert op(2, 3) == 5
    assert op.fallback_reason is None and op.fallback_calls == 0


def test_fallback_op_runs_eagerly_inside_compiled_code() -> None:
    # A compiled graph would not keep the per-call try/except: the op is left out of graphs and still falls back.
    op = rt.FallbackOp("neg", broken_kernel, torch.neg, strict=False)
    op.kernel_can_run = lambda tensors: True  # the kernel path on the CPU

    def f(x: torch.Tensor) -> torch.Tensor:
        return op(x * 2) + 1

    x = torch.randn(5)
    with pytest.warns(RuntimeWarning, match="neg falls back to torch: the kernel failed"):
        out = torch.compile(f, backend="eager")(x)
    assert torch.equal(out, -(x * 2) + 1) and op.fallback_calls == 1
    torch._dynamo.reset()
    explained = torch._dynamo.explain(f)(x)
    assert explained.graph_break_count == 1 and "torch.compiler.disable" in str(explained.break_reasons[0].reason)


@pytest.fixture
def pretend_cuda(monkeypatch):
    """`use_triton` as on a CUDA machine with an H100 and a working triton (the ops are built, not run)."""
    pytest.importorskip("triton")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # Triton targets it


@pytest.mark.parametrize(("backend", "strict"), [("auto", False), ("triton", True)])
def test_only_the_triton_backend_is_strict(pretend_cuda, backend: str, strict: bool) -> None:
    model = TinyModel(q8_linear())
    rt.apply_kernels(model, backend, rt.SparsityConfig(latent_frames=2, block_size=16))
    ops = rt.kernel_ops(model)
    names = {op.name for op in ops}
    assert names == {"layer_norm_modulate", "rms_norm_rope", "sparse attention", "dequant_matmul"}
    assert all(op.strict is strict for op in ops)
    assert rt.fallbacks(model) == {}


def test_every_quantized_linear_gets_the_dequant_kernel_and_loses_it(pretend_cuda) -> None:
    model = TinyModel(nn.Sequential(q8_linear(), nn.GELU(), q8_linear()))
    rt.apply_kernels(model, "auto")
    kernels = [m.kernel for m in model.modules() if isinstance(m, QuantizedLinear)]
    assert len(kernels) == 2 and all(isinstance(k, rt.FallbackOp) and k is kernels[0] for k in kernels)
    rt.apply_kernels(model, "torch")
    assert all(m.kernel is None for m in model.modules() if isinstance(m, QuantizedLinear))


def test_auto_on_cuda_without_a_working_triton_is_a_fallback_that_fallbacks_names(monkeypatch) -> None:
    # Before: one warning while loading, then nothing: the run summary, which lists fallbacks, said none.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(rt, "_triton_import_error", lambda: "ModuleNotFoundError: No module named 'triton'")
    model = TinyModel(q8_linear())
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        rt.apply_kernels(model, "auto", attention="int8")
    assert model.ops.layer_norm_modulate is TORCH_OPS.layer_norm_modulate and model.proj.kernel is None
    why = "triton cannot be imported (ModuleNotFoundError: No module named 'triton')"
    assert rt.fallbacks(model) == {"Triton kernels": why}
    with pytest.raises(rt.KernelBackendError, match=r"int8 attention is a Triton kernel and triton cannot be import"):
        model.ops.attention.kernel()  # the int8 op's own reason, once it falls back: not "the torch backend was chosen"
    rt.apply_kernels(model, "torch")  # chosen: not a fallback
    assert rt.fallbacks(model) == {}


def test_auto_on_a_machine_without_cuda_is_no_fallback_whatever_triton_does(monkeypatch) -> None:
    # torch's ops are the choice there, not a fallback: the summary names none, even with a broken triton.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(rt, "_triton_import_error", lambda: "ModuleNotFoundError: No module named 'triton'")
    model = TinyModel(q8_linear())
    rt.apply_kernels(model, "auto")
    assert rt.triton_unavailable("auto") is None and rt.fallbacks(model) == {}


@pytest.mark.parametrize("problem", [None, "Triton compiles its kernel launcher with a C compiler"])
def test_apply_kernels_decides_once_whether_triton_runs(pretend_cuda, monkeypatch, problem) -> None:
    # Before: the ops, the summary's reason and the dequant kernels each asked again (the import attempt and the
    # launcher build check, up to three times per load), and the dequant kernels were turned off by hand so that
    # the second asking did not warn twice.
    asked = []
    monkeypatch.setattr(rt, "_triton_problem", lambda device: asked.append(device) or problem)
    model = TinyModel(q8_linear())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rt.apply_kernels(model, "auto", attention="int8")
    assert len(asked) == 1
    assert len([w for w in caught if "Triton kernels unavailable" in str(w.message)]) == (problem is not None)
    assert isinstance(model.proj.kernel, rt.FallbackOp) is (problem is None)


def test_the_ops_carry_why_they_are_torchs(monkeypatch) -> None:
    # Before: the reason was an attribute `apply_kernels` set on the model, so ops chosen with `select_ops` (the
    # documented way to set `transformer.ops` yourself) fell back as a whole without `fallbacks` saying so.
    from motif_lite.runtime.attention import apply_attention_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(rt, "_triton_import_error", lambda: "ModuleNotFoundError: No module named 'triton'")
    model = TinyModel(q8_linear())
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        model.ops = rt.select_ops("auto")
    why = "triton cannot be imported (ModuleNotFoundError: No module named 'triton')"
    assert model.ops.why_torch == why and rt.fallbacks(model) == {"Triton kernels": why}
    apply_attention_backend(model, TORCH_OPS.attention)  # a later swap of one seam keeps the reason
    assert rt.fallbacks(model) == {"Triton kernels": why}
    assert rt.fallbacks(nn.Linear(2, 2)) == {}  # a module without Ops (the text encoder)


def sparse_inputs(frames: int, per_frame: int) -> tuple[torch.Tensor, ...]:
    return torch.randn(3, 1, 2, 2 * frames * per_frame, 16).unbind(0)


def test_sparse_decoder_attention_matches_its_element_mask() -> None:
    config = rt.SparsityConfig(latent_frames=6, window=1, block_size=16)
    ops = rt.select_ops("torch", sparse=config)
    assert ops.attention is TORCH_OPS.attention  # only the decoder attention is made sparse
    q, k, v = sparse_inputs(6, 16)
    out = ops.decoder_attention(q, k, v, None)
    tiles = patterns.ddt_decoder_local_temporal(6, 16, 1, True, 16).mask
    assert tiles.float().mean() < 1
    elements = expand_block_mask(tiles, 16, q.shape[2], k.shape[2])
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=elements))


def test_sparse_decoder_attention_builds_its_mask_for_each_length_and_setting() -> None:
    # One op serves every call of a process (a server takes requests of several sizes): each length gets its own
    # pattern, built with the config's global_first_frame.
    config = rt.SparsityConfig(latent_frames=6, window=1, global_first_frame=False, block_size=16)
    ops = rt.select_ops("torch", sparse=config)
    for per_frame in (16, 8, 16):
        q, k, v = sparse_inputs(6, per_frame)
        tiles = patterns.ddt_decoder_local_temporal(6, per_frame, 1, False, 16).mask
        assert not torch.equal(tiles, patterns.ddt_decoder_local_temporal(6, per_frame, 1, True, 16).mask)
        elements = expand_block_mask(tiles, 16, q.shape[2], k.shape[2])
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=elements)
        torch.testing.assert_close(ops.decoder_attention(q, k, v, None), expected)


def test_sparse_with_window_over_all_frames_is_dense() -> None:
    ops = rt.select_ops("torch", sparse=rt.SparsityConfig(latent_frames=4, window=3, block_size=16))
    q, k, v = sparse_inputs(4, 12)
    torch.testing.assert_close(ops.decoder_attention(q, k, v, None), F.scaled_dot_product_attention(q, k, v))


def test_sparse_length_mismatch_names_latent_frames() -> None:
    ops = rt.select_ops("torch", sparse=rt.SparsityConfig(latent_frames=5, block_size=16))
    q, k, v = sparse_inputs(4, 12)
    with pytest.raises(ConfigError, match="latent_frames"):
        ops.decoder_attention(q, k, v, None)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"latent_frames": 0}, "latent_frames >= 1"), ({"latent_frames": 3, "block_size": 100}, "block_size")],
)
def test_sparsity_config_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        rt.SparsityConfig(**kwargs)


class TinyModel(nn.Module):
    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.ops: Ops = TORCH_OPS
        self.proj = linear


def q8_linear() -> nn.Module:
    blocks = torch.randint(0, 256, (8, 34), dtype=torch.uint8)
    blocks[:, :2] = torch.full((8, 1), 0.01, dtype=torch.float16).view(torch.uint8)
    return QuantizedLinear.from_packed(blocks, Q.Q8_0, 32, torch.randn(8))


def test_apply_kernels_torch_sets_reference_everywhere() -> None:
    model = TinyModel(q8_linear())
    model.proj.kernel = lambda *args: None
    sparse = rt.SparsityConfig(latent_frames=2, block_size=16)
    assert rt.apply_kernels(model, "torch", sparse) is model
    assert model.proj.kernel is None
    assert isinstance(model.ops.decoder_attention, rt.SparseDecoderAttention)


def test_dequant_kernel_wrapper_falls_back_on_cpu() -> None:
    pytest.importorskip("triton")
    from motif_lite.kernels.dequant_matmul import dequant_matmul
    from motif_lite.kernels.reference import dequant_linear_torch

    layer = q8_linear()
    x = torch.randn(3, 32)
    expected = layer(x)
    layer.kernel = rt.FallbackOp("dequant_matmul", dequant_matmul, dequant_linear_torch)
    with pytest.warns(RuntimeWarning, match="dequant_matmul falls back"):
        torch.testing.assert_close(layer(x), expected)


def test_apply_kernels_needs_the_transformer() -> None:
    with pytest.raises(MotifLiteError, match="has no `ops`"):
        rt.apply_kernels(nn.Linear(2, 2), "torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Our transformer loaded from a random diffusers reference (1 DDT decoder block), and that reference."""
    from motif_lite import load_transformer

    ref = tiny.make_reference()
    return load_transformer(tiny.save_official(ref, tmp_path_factory.mktemp("tiny")), dtype=torch.float32), ref


def test_model_with_triton_ops_on_cpu_equals_reference_and_lists_the_fallbacks(tiny_model) -> None:
    pytest.importorskip("triton")
    model, ref = tiny_model
    x = tiny.inputs(batch=2, frames=3, height=8, width=8)
    model.ops = rt.triton_ops()  # every op falls back to torch on CPU tensors
    with pytest.warns(RuntimeWarning, match="falls back"):
        out = forward(model, x)
    fell_back = rt.fallbacks(model)
    model.ops = TORCH_OPS
    tiny.assert_close_to_reference(out, tiny.reference_forward(ref, x))
    assert fell_back == dict.fromkeys(["layer_norm_modulate", "rms_norm_rope"], "the inputs are not CUDA tensors")
    assert rt.fallbacks(model) == {}


class AnyDeviceOp(rt.FallbackOp):
    """A FallbackOp that calls its kernel on CPU tensors too, so that a kernel failure is reached without CUDA."""

    @staticmethod
    def kernel_can_run(tensors: list[torch.Tensor]) -> bool:
        return True


def test_model_with_a_failing_kernel(tiny_model) -> None:
    """A kernel that raises inside the whole model: "auto" runs torch's op, warns once and lists it; "triton" stops
    with the kernel's error."""
    model, ref = tiny_model
    x = tiny.inputs(batch=1, frames=2, height=4, width=4)
    for strict in (False, True):
        op = AnyDeviceOp("rms_norm_rope", broken_kernel, TORCH_OPS.rms_norm_rope, strict=strict)
        model.ops = dataclasses.replace(TORCH_OPS, rms_norm_rope=op)
        try:
            if strict:
                with pytest.raises(rt.KernelFailedError, match="rms_norm_rope failed .RuntimeError: no PTX"):
                    forward(model, x)
                assert rt.fallbacks(model) == {}
            else:
                with pytest.warns(RuntimeWarning, match="rms_norm_rope falls back") as caught:
                    out = forward(model, x)
                assert len(caught) == 1 and op.fallback_calls > 1  # once per op, not per call
                assert rt.fallbacks(model) == {
                    "rms_norm_rope": "the kernel failed (RuntimeError: no PTX for this card)"
                }
                tiny.assert_close_to_reference(out, tiny.reference_forward(ref, x))
        finally:
            model.ops = TORCH_OPS


def test_what_fell_back_is_each_runs_own() -> None:
    # A kernel that failed in one run (a server job) stayed in every later run's summary and notes, although each
    # call tries the kernel again and later runs ran it. `begin_run` (a pipeline's, as each `generate` starts)
    # starts the next run's record, for the ops behind the seams and the quantized linears' kernels alike.
    def fails_on_negatives(a, b):
        if a < 0:
            raise RuntimeError("no PTX for this card")
        return a + b

    model = TinyModel(q8_linear())
    op = rt.FallbackOp("add", fails_on_negatives, lambda a, b: a + b)
    model.ops = dataclasses.replace(TORCH_OPS, layer_norm_modulate=op)
    model.proj.kernel = rt.FallbackOp("dequant_matmul", broken_kernel, lambda a, b: a + b)
    reason = "the kernel failed (RuntimeError: no PTX for this card)"
    with pytest.warns(RuntimeWarning, match="falls back"):
        assert op(-1, 3) == 2 and model.proj.kernel(1, 2) == 3
    assert rt.fallbacks(model) == {"add": reason, "dequant_matmul": reason}
    rt.begin_run(model)  # the next run, where the kernel works
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert op(4, 3) == 7
    assert rt.fallbacks(model) == {} and not op.warned and op.fallback_calls == 0
    rt.begin_run(model)  # a run where it fails again warns and says so again
    with pytest.warns(RuntimeWarning, match="add falls back"):
        assert op(-2, 3) == 1
    assert rt.fallbacks(model) == {"add": reason}


def test_a_fallback_inside_auto_attention_is_listed() -> None:
    # A non-strict Triton op handed to AutoAttention by hand falls back during the trial (same math, so it stays a
    # candidate): the run summary names it. (`auto_candidates` builds ours strict: a failure drops it instead.)
    from motif_lite.runtime.attention import AutoAttention, apply_attention_backend

    triton = AnyDeviceOp("attention", broken_kernel, sdpa_attention)
    model = TinyModel(nn.Identity())
    apply_attention_backend(model, AutoAttention({"triton": triton, "sdpa": sdpa_attention}, timer=lambda *_: 1.0))
    q = torch.randn(1, 2, 8, 16)
    with pytest.warns(RuntimeWarning, match="attention falls back"):
        model.ops.attention(q, q, q, None)
    assert rt.kernel_ops(model) == [triton]
    assert rt.fallbacks(model) == {"attention": "the kernel failed (RuntimeError: no PTX for this card)"}


def wrapper_around(kind: str) -> tuple[object, rt.FallbackOp]:
    """An op that wraps another (`kind`), and the Triton op it wraps."""
    from motif_lite.runtime.attention import AutoAttention, FixedAttention
    from motif_lite.runtime.ulysses import UlyssesAttention

    if kind == "fixed":
        pytest.importorskip("triton")
        fixed = FixedAttention("triton")  # our Triton kernel behind its own FallbackOp
        return fixed, fixed.attend
    op = rt.FallbackOp("attention", broken_kernel, sdpa_attention)
    if kind == "auto":
        return AutoAttention({"sdpa": sdpa_attention, "triton": op}), op
    if kind == "sparse":
        return rt.SparseDecoderAttention(rt.SparsityConfig(latent_frames=1), op), op
    return UlyssesAttention(op, None, 0, (1,), 1), op


@pytest.mark.parametrize("kind", ["auto", "fixed", "sparse", "ulysses"])
def test_kernel_ops_finds_the_op_behind_every_wrapper(kind: str) -> None:
    inner, op = wrapper_around(kind)
    assert isinstance(op, rt.FallbackOp)
    model = TinyModel(nn.Identity())
    # At any depth: here also inside a sparse decoder attention.
    for outer in (inner, rt.SparseDecoderAttention(rt.SparsityConfig(latent_frames=1), inner)):
        model.ops = dataclasses.replace(TORCH_OPS, decoder_attention=outer)
        assert isinstance(outer, rt.WrapsOps) and rt.kernel_ops(model) == [op]


def test_model_sparse_decoder_uses_the_pattern(tiny_model) -> None:
    model, ref = tiny_model
    x = tiny.inputs(batch=1, frames=3, height=8, width=8)  # N = 3 frames x 16 tokens; decoder attends 2N = 96
    rt.apply_kernels(model, "torch", rt.SparsityConfig(latent_frames=3, window=2, block_size=16))
    tiny.assert_close_to_reference(forward(model, x), tiny.reference_forward(ref, x))  # window covers all frames

    rt.apply_kernels(
        model, "torch", rt.SparsityConfig(latent_frames=3, window=0, global_first_frame=False, block_size=16)
    )
    sparse = forward(model, x)
    tiles = patterns.ddt_decoder_local_temporal(3, 16, 0, False, 16).mask

    def masked_sdpa(q, k, v, mask):  # the last decoder block's queries are the decoder's 48 tokens only
        allowed = expand_block_mask(tiles, 16, 96, 96)[..., : q.shape[2], :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)

    model.ops = dataclasses.replace(TORCH_OPS, decoder_attention=masked_sdpa)
    torch.testing.assert_close(sparse, forward(model, x))
    model.ops = TORCH_OPS
    assert (sparse - tiny.reference_forward(ref, x)).abs().max() > 1e-3  # the decoder really went sparse


def no_triton(name: str) -> None:
    raise ModuleNotFoundError("No module named 'triton'", name="triton")


@pytest.mark.parametrize("platform", ["win32", "linux"])
def test_triton_missing_on_windows_names_the_windows_build(monkeypatch, platform) -> None:
    # On Windows pip installs torch without Triton (PyPI has no Windows build): the reason said only "No module named
    # 'triton'", and `pip install triton` there finds nothing to install.
    from types import SimpleNamespace

    monkeypatch.setattr(rt, "importlib", SimpleNamespace(import_module=no_triton))
    monkeypatch.setattr(sys, "platform", platform)
    why = rt._triton_import_error()
    assert why.startswith("ModuleNotFoundError: No module named 'triton'")
    assert ("pip install triton-windows" in why) == (platform == "win32"), why
    # Another module missing (a kernel's own import, Triton installed) is no reason to install Triton.
    from motif_lite.runtime.triton_build import windows_install_hint

    assert windows_install_hint(ModuleNotFoundError("No module named 'ptxas'", name="ptxas")) is None


def q3k_linear() -> QuantizedLinear:
    # Q3_K: a type the Triton dequant_matmul does not read, which our Q3_K_M and Q2_K recipes make.
    from gguf import GGML_QUANT_SIZES

    block_values, block_bytes = GGML_QUANT_SIZES[Q.Q3_K]
    blocks = torch.randint(0, 256, (4, block_bytes), dtype=torch.uint8)
    blocks[:, -2:] = torch.full((4, 1), 0.01, dtype=torch.float16).view(torch.uint8)  # d, the block's scale
    return QuantizedLinear.from_packed(blocks, Q.Q3_K, block_values)


@pytest.mark.parametrize("backend", ["auto", "triton"])
def test_only_the_types_dequant_matmul_reads_get_it(pretend_cuda, backend: str) -> None:
    # Before: the Q3_K layer got the kernel too, and its first forward stopped a `--kernels triton` run
    # (KernelFailedError), or, under auto, warned of and listed a fallback at every call.
    q8, q3k = q8_linear(), q3k_linear()
    model = TinyModel(nn.ModuleList([q8, q3k]))
    x = torch.randn(3, 256)
    expected = F.linear(x, q3k.dequantized_weight())
    rt.apply_kernels(model, backend)
    assert isinstance(q8.kernel, rt.FallbackOp) and q3k.kernel is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.testing.assert_close(q3k(x), expected)
    assert rt.fallbacks(model) == {}
    text_encoder = nn.Sequential(q3k_linear(), q8_linear())  # the same rule for the text encoder
    rt.apply_dequant_kernels(text_encoder, backend)
    assert text_encoder[0].kernel is None and isinstance(text_encoder[1].kernel, rt.FallbackOp)
