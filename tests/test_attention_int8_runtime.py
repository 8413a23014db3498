"""`attention="int8"` through the runtime: one op behind every attention seam, exact attention with one warning
where the 8-bit kernel cannot run (the CPU, the torch backend), the planner's workspace term and the CLI flag."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from motif_lite.cli import main as cli_main
from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.kernels import int8_scheme
from motif_lite.model.ops import TORCH_OPS
from motif_lite.runtime import kernels as rt
from motif_lite.runtime.activation_memory import CONTEXT_TOKENS, OFFICIAL_IMAGE_TOKENS
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.runtime.planner import PlannerInputs, plan_memory
from motif_lite.vae.config import WanVAEConfig

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")


def qkv_and_mask(length: int = 24) -> tuple[torch.Tensor, ...]:
    q, k, v = torch.randn(3, 2, 2, length, 16).unbind(0)
    mask = torch.ones(2, 1, 1, length, dtype=torch.bool)
    mask[1, ..., length // 2 :] = False
    return q, k, v, mask


def int8_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "int8 attention" in str(w.message)]


def test_one_op_behind_every_attention_seam() -> None:
    ops = rt.select_ops("torch", attention="int8")
    assert isinstance(ops.attention, rt.FallbackOp) and ops.attention.name == "int8 attention"
    assert ops.decoder_attention is ops.attention
    assert ops.rms_norm_rope is TORCH_OPS.rms_norm_rope  # everything else stays as the backend says
    sparse = rt.select_ops("torch", rt.SparsityConfig(latent_frames=2, block_size=16), attention="int8")
    assert isinstance(sparse.decoder_attention, rt.SparseDecoderAttention)
    assert sparse.decoder_attention.attend is sparse.attention


@pytest.mark.parametrize("backend", ["torch", pytest.param("auto", marks=no_cuda)])
def test_cpu_falls_back_to_exact_attention_with_one_warning(backend: str) -> None:
    ops = rt.select_ops(backend, attention="int8")
    q, k, v, mask = qkv_and_mask()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = ops.attention(q, k, v, mask)
        decoder = ops.decoder_attention(q, k, v, None)
        ops.attention(q, k, v, mask)
    assert len(int8_warnings(record)) == 1, int8_warnings(record)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=0, rtol=0)
    torch.testing.assert_close(decoder, F.scaled_dot_product_attention(q, k, v), atol=0, rtol=0)


def test_sparse_decoder_falls_back_to_the_exact_sparse_reference() -> None:
    config = rt.SparsityConfig(latent_frames=3, window=0, global_first_frame=False, block_size=16)
    int8_ops = rt.select_ops("torch", config, attention="int8")
    exact_ops = rt.select_ops("torch", config)
    q, k, v, _ = qkv_and_mask(96)  # 2 x 3 frames x 16 tokens
    with pytest.warns(RuntimeWarning, match="int8 attention"):
        out = int8_ops.decoder_attention(q, k, v, None)
    torch.testing.assert_close(out, exact_ops.decoder_attention(q, k, v, None), atol=0, rtol=0)


def test_torch_backend_never_runs_the_kernel() -> None:
    """On a GPU too: --kernels torch means no Triton, so the int8 op's kernel refuses and exact attention runs."""
    op = rt.int8_attention_op(triton_on=False)
    with pytest.raises(rt.KernelBackendError, match="torch kernel backend"):
        op.kernel(*qkv_and_mask())


def test_unknown_attention_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="'fp4'.*exact, int8"):
        rt.select_ops("torch", attention="fp4")


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_capability() < (8, 0), reason="needs INT8 tensor cores"
)
def test_cuda_runs_the_8bit_kernel_without_warning() -> None:
    ops = rt.select_ops("auto", attention="int8")
    q, k, v, mask = (t.cuda() for t in qkv_and_mask(300))
    q, k, v = q.bfloat16(), k.bfloat16(), v.bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ops.attention(q, k, v, mask)
    exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)
    assert F.cosine_similarity(out.float().flatten(), exact.flatten(), dim=0) > 0.999


def test_workspace_reaches_the_memory_plan() -> None:
    """The planner counts int8's quantized K/V copies in the denoise stage: bounded, whatever the resolution."""
    config = TransformerConfig()
    n = video_tokens(1280, 736, 121, config, WanVAEConfig())
    workspace = rt.attention_workspace_bytes("int8", config, n)
    assert rt.attention_workspace_bytes("exact", config, n) == 0
    assert 0 < workspace <= int8_scheme.WORKSPACE_BYTES
    sizes = (1280, 736, 121, config, 4 * 2**30, 8 * 2**30, WanVAEConfig())
    exact = plan_memory(PlannerInputs(*sizes, cfg_batch=1), None)
    int8 = plan_memory(
        PlannerInputs(*sizes, cfg_batch=1, attention_workspace_bytes=lambda rows: rows * workspace), None
    )
    denoise = {plan: next(s for s in plan.stages if s.name == "denoise") for plan in (exact, int8)}
    assert denoise[int8].peak_bytes - denoise[exact].peak_bytes >= workspace


@pytest.mark.parametrize("size", [(832, 480, 49), (832, 480, 121), (1280, 736, 121)])
def test_workspace_covers_every_attention_call(size) -> None:
    # The joint attention over N + text and the DDT decoder's over 2N tokens: heads go in groups that fit the
    # workspace bound, so the longer call does not always need the larger workspace.
    config = TransformerConfig()
    n = video_tokens(*size, config, WanVAEConfig())
    heads, dim = config.num_attention_heads, config.attention_head_dim
    joint = int8_scheme.workspace_bytes(1, heads, n + CONTEXT_TOKENS, dim, key_mask=True)  # a padded prompt
    decoder = int8_scheme.workspace_bytes(1, heads, 2 * n, dim)
    assert rt.attention_workspace_bytes("int8", config, n) == max(joint, decoder)
    assert rt.attention_workspace_bytes("int8", config.replace(num_decoder_layers=0), n) == joint
    # Text-to-video: the joint attention has the prompt's tokens only, not the image's 4096 SigLIP tokens.
    text_only = int8_scheme.workspace_bytes(1, heads, n + CONTEXT_TOKENS - OFFICIAL_IMAGE_TOKENS, dim, key_mask=True)
    assert rt.attention_workspace_bytes("int8", config, n, image_tokens=0) == max(text_only, decoder)
    assert rt.attention_workspace_bytes("int8", config.replace(num_decoder_layers=0), n, image_tokens=0) == text_only
    # Counted with the image's tokens or not: not always more with them (fewer heads then fit a group).
    assert text_only != joint
    if size == (1280, 736, 121):
        assert joint > decoder  # the case a bound on the longest call alone would miss


def test_cli_flag(capsys, monkeypatch) -> None:
    from help_text import help_text  # in 80 columns: narrower, argparse would put the choices on a line of their own

    out = help_text(capsys, monkeypatch, cli_main, ["run"])
    assert "--attention {exact,int8}" in out and "8-bit attention" in out
    with pytest.raises(SystemExit) as bad:
        cli_main(["run", "-p", "x", "--attention", "int4"])
    assert bad.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err
