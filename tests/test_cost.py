"""The FLOP model behind `motif-lite run`'s CPU estimate, checked against torch's FLOP counter on real (tiny)
models; and the question before a long CPU run (asked on a terminal, refused without one, skipped by --yes), tested
without running any model."""

from __future__ import annotations

import io
import itertools
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch
from tiny_config import TINY, inputs
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from motif_lite import cli, pipeline, run_estimates
from motif_lite import preflight as checks
from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.quantize_settings import with_quantize
from motif_lite.request import GenerationRequest
from motif_lite.runtime import cost
from motif_lite.runtime.activation_memory import ImageTowerShape, TextEncoderShape
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.model import WanVAE


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def counted_flops(fn, backend: SDPBackend = SDPBackend.MATH) -> int:
    """What torch counts for `fn()`: matmuls, convolutions and, on the math backend, attention (on the CPU's flash
    backend attention counts nothing, so the difference of the two is attention's share)."""
    with torch.no_grad(), sdpa_kernel(backend), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize(("cross_dual", "decoder_layers"), [(False, 1), (True, 1), (False, 0), (False, 2)])
def test_transformer_flops_match_torch_counter(cross_dual, decoder_layers):
    config = {**TINY, "enable_text_cross_attention_dual": cross_dual, "num_decoder_layers": decoder_layers}
    config = TransformerConfig.from_dict(config)
    model = MotifVideoTransformer(config).eval()
    x = inputs(batch=1, frames=3, height=16, width=16, text=7, masked=False)  # N = 3 x 8 x 8 = 192 video tokens
    forward = lambda: model(x["latents"], x["timestep"], x["text_embeds"])  # noqa: E731
    counted, without_attention = counted_flops(forward), counted_flops(forward, SDPBackend.FLASH_ATTENTION)
    ours = cost.transformer_flop_parts(config, video_tokens=192, text_tokens=7)
    assert ours.attention == counted - without_attention  # every attention call, the decoder's last included
    # Ours leaves out the embedders, the per-sample modulation and the head: a few % at this tiny size.
    assert 0.95 * without_attention < ours.linear <= without_attention
    assert cost.transformer_flops(config, 192, 7) == ours.total


def test_vae_decode_flops_match_torch_counter():
    config = WanVAEConfig(base_dim=8, dim_mult=[1, 2, 2, 2], num_res_blocks=1)
    vae = WanVAE(config).eval()
    z = torch.randn(1, 16, 3, 4, 6)  # -> 9 frames of 32 x 48
    counted = counted_flops(lambda: vae.decode(z))
    assert cost.vae_decode_flops(config, width=48, height=32, frames=9) == pytest.approx(counted, rel=1e-6)


def test_text_encoder_flops_match_torch_counter(tmp_path):
    from tiny_text import make_tiny_text_encoder
    from transformers import T5Gemma2Encoder

    make_tiny_text_encoder(tmp_path)
    model = T5Gemma2Encoder.from_pretrained(tmp_path / "text_encoder").eval()
    tokens = 64  # attention (2 query heads over 1 key/value head) is a third of it
    ids = torch.randint(3, 30, (1, tokens))
    counted = counted_flops(lambda: model(input_ids=ids, attention_mask=torch.ones_like(ids)))
    ours = cost.text_encoder_flops(cost.TextEncoderShape.from_json(tmp_path / "text_encoder/config.json"), tokens)
    assert ours == pytest.approx(counted, rel=1e-6)  # the norms are no matmuls: neither side counts them


def test_official_architecture_figures():
    # One 720p forward (N = 114,080, no text) is ~4.9 PFLOPs (5.1 with the last decoder block whole, as the
    # reference computes it), over 90 % of it attention; 50 guided steps ~100 of those. (A check on the formula's
    # scale: an H100 ran the whole-block forward in 8.9 s, i.e. ~570 TFLOP/s, in line with its measured SDPA rate;
    # docs/benchmarks.md.)
    official = TransformerConfig()
    forward = cost.transformer_flops(official, 114_080, 0)
    assert 4.85e15 < forward < 5.0e15
    estimate = cost.generation_cost(
        official, WanVAEConfig(), cost.TextEncoderShape(), 1280, 736, 121, 50, ("a fox", "blurry")
    )
    assert estimate.denoise == pytest.approx(50 * 2 * forward, rel=0.01)
    assert cost.TextEncoderShape().layer_weights == 3_208_642_560  # 34 layers of q, k, v, o and the gated MLP


def test_prompt_tokens_are_bos_and_one_per_four_characters_up_to_the_limit():
    assert cost.prompt_tokens("") == 1  # <bos> alone
    assert [cost.prompt_tokens("x" * n) for n in (1, 4, 5, 8)] == [2, 2, 3, 3]
    assert cost.prompt_tokens("x" * 100_000) == cost.MAX_PROMPT_TOKENS == 512


def test_each_prompt_costs_its_own_encoding_and_transformer_calls():
    # Guided: every step calls the transformer once per prompt, each over its own text length.
    def estimate(*prompts: str) -> cost.GenerationCost:
        return cost.generation_cost(
            TransformerConfig(), WanVAEConfig(), cost.TextEncoderShape(), 256, 256, 9, 3, prompts
        )

    short, long = "a fox", "blurry, static, " * 25
    both, alone, other = estimate(short, long), estimate(short), estimate(long)
    assert other.denoise > alone.denoise  # the longer text costs more
    assert both.denoise == pytest.approx(alone.denoise + other.denoise, rel=1e-12)
    assert both.text == pytest.approx(alone.text + other.text, rel=1e-12)
    assert both.decode == alone.decode


def test_the_negative_prompt_costs_only_its_guided_steps():
    # A guidance window over part of the steps: the negative prompt's transformer calls on those steps only.
    def estimate(*prompts: str, guided: int | None = None) -> cost.GenerationCost:
        return cost.generation_cost(
            TransformerConfig(), WanVAEConfig(), cost.TextEncoderShape(), 256, 256, 9, 4, prompts, guided
        )

    alone, negative = estimate("a fox"), estimate("blurry, static")
    assert estimate("a fox", "blurry, static", guided=1).denoise == pytest.approx(
        alone.denoise + negative.denoise / 4, rel=1e-12
    )
    assert estimate("a fox", "blurry, static", guided=1).text == pytest.approx(alone.text + negative.text)


def test_text_encoder_shape_is_read_from_the_checkpoint_folder(tmp_path):
    (tmp_path / "text_encoder").mkdir()
    config = {"text_config": {"hidden_size": 64, "num_hidden_layers": 2}}
    (tmp_path / "text_encoder" / "config.json").write_text(json.dumps(config))
    shape = cost.text_encoder_shape(tmp_path)
    assert (shape.hidden, shape.layers, shape.heads) == (64, 2, cost.TextEncoderShape().heads)  # the rest: defaults
    assert cost.text_encoder_shape(None) == cost.text_encoder_shape(tmp_path / "elsewhere") == cost.TextEncoderShape()


@pytest.mark.parametrize(
    ("text_config", "said"),
    [({"hidden_size": "64"}, r"text_config\.hidden_size must be an integer from 1 to 1,048,576, got '64'"),
     ({"num_hidden_layers": 2000}, r"text_config\.num_hidden_layers must be an integer from 1 to 1,024, got 2000"),
     ([64], r"text_config must be a JSON object, got \[64\]")],
)  # fmt: skip
def test_text_encoder_shape_refuses_the_sizes_the_run_refuses(tmp_path, text_config, said):
    # The shape is checked as the text encoder's own config check does (text_config.check_sizes), bounds included:
    # a size the encoder cannot be built from is not costed either.
    (tmp_path / "config.json").write_text(json.dumps({"text_config": text_config}))
    with pytest.raises(ConfigError, match=rf"config\.json: {said}$"):
        cost.TextEncoderShape.from_json(tmp_path / "config.json")


@pytest.mark.parametrize("shape", [TextEncoderShape, ImageTowerShape])
def test_a_checkpoint_folders_encoder_shape_refuses_the_sizes_the_run_refuses(tmp_path, shape):
    # The planner reads a checkpoint folder's text_encoder/config.json through of_checkpoint: checked there as
    # from_json checks it, or a string size reached the plan's arithmetic (a TypeError, or a repeated string).
    (tmp_path / "text_encoder").mkdir()
    config = {"text_config": {"hidden_size": "64"}, "vision_config": {"hidden_size": "64"}}
    (tmp_path / "text_encoder" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"config\.json: text_config\.hidden_size must be an integer"):
        shape.of_checkpoint(tmp_path)


def test_the_matmul_probe_counts_two_flops_per_multiply_accumulate(monkeypatch):
    # A clock that advances 10 ms per reading: every timed call takes 10 ms. The CPU's probe is 512 tokens through
    # a 1536 -> 1536 linear: 512 x 1536 x 1536 multiply-accumulates, 2 FLOPs each.
    clock = itertools.count()
    monkeypatch.setattr(cost, "time", types.SimpleNamespace(perf_counter=lambda: next(clock) * 0.01))
    rate = cost.measure_matmul_flops(torch.float32, seconds=0.05)
    assert rate == pytest.approx(2 * 512 * 1536 * 1536 / 0.01)


class Reached(Exception):
    """Raised by the stand-in for load_pipeline: the run went past the question."""


@pytest.fixture
def cpu_run(tmp_path, monkeypatch):
    """`motif-lite run` on the CPU up to loading, with this CPU's speed fixed at 50 GFLOP/s."""
    from huggingface_hub import constants

    from motif_lite.checkpoint import locate_sources

    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: 5e10)
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.0)  # the official model: FLOPs decide
    # Nothing at hand: the official architecture (as after a download); then loading would start.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    at_hand = locate_sources(download=False, require_weights=False)
    monkeypatch.setattr(checks, "preflight", lambda *a, **kw: (at_hand, torch.device("cpu")))
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))

    def run(*extra: str) -> int:
        args = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4")]
        return cli.main([*args, "--device", "cpu", *extra])

    return run


def test_long_cpu_run_is_refused_without_a_terminal(cpu_run, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only torch, as CI's, on any machine
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    assert cpu_run() == cli.EXIT_USER_ERROR  # the official 720p default: months on a CPU
    err = capsys.readouterr().err
    assert "error: on the CPU this run (1280x736x121, 50 steps) is 4.9e+17 FLOPs: about" in err
    assert "days at the 50 GFLOP/s this CPU does now" in err and "Pass --yes to start it anyway." in err
    assert "The CPU is meant for tests (no GPU here: this torch build has no CUDA): use a GPU" in err
    with pytest.raises(Reached):
        cpu_run("--yes")
    assert "starting it (--yes)" in capsys.readouterr().err


class BackgroundTerminal(io.StringIO):
    """A terminal as stdin (whose foreground is another process group where `os.tcgetpgrp` says so)."""

    def isatty(self) -> bool:
        return True

    def fileno(self) -> int:
        return 0


@pytest.mark.parametrize("stdin", [None, "background", "stdout taken"])
def test_long_cpu_run_is_refused_where_nobody_sees_the_question(cpu_run, capsys, monkeypatch, stdin):
    # `motif-lite run ... <&-` (sys.stdin is None) failed with a traceback; `motif-lite run ... > log 2>&1 &` asked
    # in the log, and the shell stopped the job as it read the terminal (SIGTTIN); `subprocess.run(...,
    # capture_output=True)` from a terminal asked into the captured stdout: each a run that waited unseen.
    stdout_is_a_terminal = stdin != "stdout taken"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: stdout_is_a_terminal)
    if stdin == "background":
        monkeypatch.setattr(os, "tcgetpgrp", lambda fd: os.getpgrp() + 1)
    if stdin in ("background", "stdout taken"):
        stdin = BackgroundTerminal()
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked a question nobody could answer"))
    assert cpu_run() == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Pass --yes to start it anyway." in err and "Traceback" not in err


def test_a_cpu_run_no_plan_fits_is_refused_before_its_time_is_asked_about(cpu_run, capsys, monkeypatch):
    # The memory plan's refusal comes before the question: "Start it anyway?" answered yes, then refused, was a
    # question for nothing; as its dry run, which plans, then says the time.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked about a run no plan fits"))
    assert cpu_run("--ram", "0.5") == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "error: this run needs about" in err and "but --ram is 0.50 GiB" in err


@pytest.mark.parametrize(("answer", "starts"), [("y", True), ("Yes ", True), ("n", False), ("", False)])
def test_long_cpu_run_asks_on_a_terminal(cpu_run, capsys, monkeypatch, answer, starts):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    questions = []
    monkeypatch.setattr("builtins.input", lambda prompt: questions.append(prompt) or answer)
    if starts:
        with pytest.raises(Reached):
            cpu_run("-W", "256", "-H", "256", "--video-frames", "17")
    else:
        assert cpu_run("-W", "256", "-H", "256", "--video-frames", "17") == cli.EXIT_USER_ERROR
        assert "error: not started" in capsys.readouterr().err
    assert len(questions) == 1 and "Start it anyway? [y/N]" in questions[0] and "hours" in questions[0]


def test_end_of_input_at_the_cpu_time_question_is_no(cpu_run, capsys, monkeypatch):
    # Ctrl-D at "Start it anyway? [y/N]" raised EOFError out of confirm_cpu_time: a traceback, exit code 1.
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    def end_of_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", end_of_input)
    assert cpu_run("-W", "256", "-H", "256", "--video-frames", "17") == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    # The question's line has no end (the answer ended it): the error starts a line of its own after a blank one.
    assert "\n\nerror: not started" in err and "Traceback" not in err


def test_short_cpu_runs_do_not_ask_and_dry_runs_only_say(cpu_run, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    with pytest.raises(Reached):  # 2 steps at 256x256x9: about 2 minutes at 50 GFLOP/s
        cpu_run("-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2")
    capsys.readouterr()
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("a dry run asked"))
    assert cpu_run("--dry-run") == 0  # plans the official architecture: says how long the run would take
    err = capsys.readouterr().err
    assert "note: on the CPU this run (1280x736x121, 50 steps) is 4.9e+17 FLOPs: about" in err
    assert "a run asks before it starts (--yes starts it)" in err
    assert cpu_run("--dry-run", "-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2") == 0
    assert "on the CPU this run" not in capsys.readouterr().err
    # A batch: the time of all its videos, as the run asks about (the dry run counted one video and said nothing).
    assert cpu_run("--dry-run", "-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2", "-b", "8") == 0
    assert "note: on the CPU this run (256x256x9, 2 steps, 8 videos) is 1.3e+14 FLOPs" in capsys.readouterr().err


def test_quantizing_as_it_loads_is_counted_in_the_cpu_time(cpu_run, monkeypatch, capsys):
    # Before: --quantize / --text-encoder-quantize were left out of the estimate, and a short run that spends 7
    # minutes quantizing the official text encoder's K-quants on the CPU started without asking.
    from motif_lite.checkpoint import locate_sources

    small = ("-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2")  # 5 minutes of FLOPs at 50 GFLOP/s
    assert cpu_run("--dry-run", *small, "--quantize", "Q8_0") == 0  # + 51 s: still under 10 minutes
    assert "on the CPU this run" not in capsys.readouterr().err
    assert cpu_run("--dry-run", *small, "--text-encoder-quantize", "Q4_K_M") == 0  # + 430 s
    err = capsys.readouterr().err
    assert (
        "note: on the CPU this run (256x256x9, 2 steps) is 1.6e+13 FLOPs: about 5 minutes at the 50 GFLOP/s this "
        "CPU does now (bfloat16 matrix multiply), and quantizing the text encoder to Q4_K_M as it loads about 7 "
        "minutes more (approximate: the rates measured on 2 CPU cores)."
    ) in err
    assert "use a GPU, or quantize once with the command its note gives and load that file" in err
    # A run asks as the dry run said (its sources come from the checks before loading, quantizing as they say).
    at_hand = locate_sources(download=False, require_weights=False)
    checked = lambda *a, quantize, text_encoder_quantize, **kw: (  # noqa: E731
        with_quantize(at_hand, quantize, text_encoder_quantize),
        torch.device("cpu"),
    )
    monkeypatch.setattr(checks, "preflight", checked)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert cpu_run(*small, "--quantize", "Q4_K_M", "--text-encoder-quantize", "Q8_0") == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err  # 204 s + 107 s
    assert "quantizing the transformer to Q4_K_M and the text encoder to Q8_0 as they load about 5 minutes more" in err
    assert "Pass --yes to start it anyway." in err


def test_the_advice_weighs_the_quantizing_against_the_whole_run(cpu_run, monkeypatch, capsys):
    # The way out is quantizing once where that is most of the time: 430 s of it against 5 minutes of FLOPs is most,
    # but not where each transformer call adds a fixed 100 s (a small size then saves the most).
    monkeypatch.setattr(cost, "slowest_call_seconds", lambda config: 100.0)
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 100.0)
    small = ("-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2")
    assert cpu_run("--dry-run", *small, "--text-encoder-quantize", "Q4_K_M") == 0
    err = capsys.readouterr().err
    assert "transformer calls: about" in err and "use a GPU, or a small size such as -W 256" in err
    # A run short on any CPU whose quantizing alone is long is asked about all the same (not skipped as short).
    monkeypatch.setattr(cost, "slowest_call_seconds", lambda config: 0.0)
    tiny = ("-W", "64", "-H", "64", "--video-frames", "5", "--steps", "1")
    assert cpu_run("--dry-run", *tiny, "--quantize", "Q4_K_M", "--text-encoder-quantize", "Q4_K_M") == 0  # 634 s
    err = capsys.readouterr().err
    assert "quantizing the transformer to Q4_K_M and the text encoder to Q4_K_M as they load about 11 minutes" in err


def test_a_duration_reads_as_words_a_user_would_write():
    # Before: a quantizing of 40 s was "about 1 minutes", one of 20 s "about 0 minutes".
    from motif_lite.run_estimates import _duration

    assert [_duration(s) for s in (20, 40, 89, 91, 1500)] == ["1 minute", "1 minute", "1 minute", "2 minutes",
                                                            "25 minutes"]  # fmt: skip
    assert _duration(3 * 3600) == "3.0 hours"
    assert _duration(40 * 86400) == "40 days"


def test_a_long_gpu_run_says_how_long_first(tmp_path, monkeypatch, capsys):
    # On a GPU nothing is asked: a note gives the range (FLOPs over the measured matrix-multiply rate, up to 1.5x).
    from huggingface_hub import constants

    from motif_lite.checkpoint import locate_sources

    rates = []
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype, seconds, device: rates.append(device) or 7.75e14)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    at_hand = locate_sources(download=False, require_weights=False)
    monkeypatch.setattr(checks, "preflight", lambda *a, **kw: (at_hand, torch.device("cuda")))
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))  # an H200: bf16 is native
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    args = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda", "--vram", "24"]
    with pytest.raises(Reached):  # the official 720p: 4.9e17 FLOPs at 775 TFLOP/s (an H200's rate) is 11 minutes
        cli.main(args)
    err = capsys.readouterr().err
    assert "note: this run (1280x736x121, 50 steps) is 4.9e+17 FLOPs: about 11 minutes to 16 minutes on this GPU" in err
    assert "(775 TFLOP/s bfloat16 matrix multiply now;" in err and rates == [torch.device("cuda")]
    with pytest.raises(Reached):  # a short run: no note
        cli.main([*args, "-W", "832", "-H", "480", "--video-frames", "49", "--steps", "25"])
    assert "note: this run" not in capsys.readouterr().err
    with pytest.raises(Reached):  # short on any GPU: not even the probe runs on the way
        cli.main([*args, "-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2"])
    assert len(rates) == 2 and "note: this run" not in capsys.readouterr().err

    def out_of_memory(dtype, seconds, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(cost, "measure_matmul_flops", out_of_memory)  # a full GPU: no estimate, no traceback
    with pytest.raises(Reached):
        cli.main(args)
    assert "note: this run" not in capsys.readouterr().err


def test_the_gpu_note_counts_the_quantizing_the_cpu_does_as_it_loads(tmp_path, monkeypatch, capsys):
    # Before: a GPU run's note left out --quantize's rounding on the CPU (about a minute for the transformer's Q8_0,
    # two for the text encoder's), and a run of 8 minutes plus 3 of quantizing started without a word. The K-quants'
    # search runs on the GPU (not measured yet): not counted.
    from huggingface_hub import constants

    from motif_lite.checkpoint import locate_sources

    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype, seconds, device: 1e15)  # 720p: 8 minutes
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    at_hand = locate_sources(download=False, require_weights=False)
    checked = lambda *a, quantize, text_encoder_quantize, **kw: (  # noqa: E731
        with_quantize(at_hand, quantize, text_encoder_quantize),
        torch.device("cuda"),
    )
    monkeypatch.setattr(checks, "preflight", checked)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    args = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda", "--vram", "24"]
    with pytest.raises(Reached):
        cli.main([*args, "--quantize", "Q8_0", "--text-encoder-quantize", "Q8_0"])
    err = capsys.readouterr().err
    assert "note: this run (1280x736x121, 50 steps) is 4.9e+17 FLOPs: about 8 minutes to 12 minutes on this GPU" in err
    assert (
        "attention and streamed weights are slower), and quantizing the transformer to Q8_0 and the text encoder to "
        "Q8_0 as they load about 3 minutes more (approximate: the rates measured on 2 CPU cores). For a quick look"
    ) in err
    for searched_on_the_gpu in (["--quantize", "Q4_K_M"], ["--text-encoder-quantize", "Q4_K_M"]):
        with pytest.raises(Reached):
            cli.main([*args, *searched_on_the_gpu])
        assert "note: this run" not in capsys.readouterr().err
    # Where the quantizing is most of the time, a smaller video saves little: the way out is the file made once.
    from motif_lite.settings import resolve_settings

    request = GenerationRequest("a fox", width=256, height=256, frames=9, steps=2)
    settings = resolve_settings(request, at_hand.configs, at_hand.transformer)
    quantizing = {"the text encoder to Q8_0": 700.0}  # a slow CPU's
    note = run_estimates.gpu_time_note(request, settings, at_hand.configs, torch.bfloat16, "cuda", 1, quantizing)
    assert note.endswith(
        "as it loads about 12 minutes more (approximate: the rates measured on 2 CPU cores). To skip the quantizing: "
        "quantize once with the command its note gives and load that file"
    )
    # The advice turns where the quantizing takes longer than the run's own work, not later.
    long_run = GenerationRequest("a fox", width=1280, height=736, frames=121, steps=50)
    settings = resolve_settings(long_run, at_hand.configs, at_hand.transformer)
    seconds = run_estimates.run_flops(long_run, settings, at_hand.configs) / 1e15  # 8 minutes
    for share, advice in [(0.8, "For a quick look first"), (1.25, "To skip the quantizing")]:
        quantizing = {"the text encoder to Q8_0": share * seconds}
        note = run_estimates.gpu_time_note(long_run, settings, at_hand.configs, torch.bfloat16, "cuda", 1, quantizing)
        assert advice in note, (share, note)


def test_a_dry_run_for_a_gpu_says_how_long_only_when_the_gpu_is_here(tmp_path, monkeypatch, capsys):
    # The GPU's note as the run gives it, for all the videos of a batch; planned for a GPU this machine lacks, none
    # (nothing to measure).
    from huggingface_hub import constants

    rates = []
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype, seconds, device: rates.append(device) or 7.75e14)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    args = ["run", "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda", "--vram", "24", "--dry-run"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main([*args, "-b", "2"]) == 0
    assert "on this GPU" not in capsys.readouterr().err and rates == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * 2**30, 141 * 2**30))  # an H200's
    assert cli.main([*args, "-b", "2"]) == 0
    err = capsys.readouterr().err
    assert "note: this run (1280x736x121, 50 steps, 2 videos) is " in err and "about 21 minutes to 32 minutes" in err
    # The quantizing the CPU does as it loads, as the run's own note counts it.
    assert cli.main([*args, "--quantize", "Q8_0"]) == 0
    assert "and quantizing the transformer to Q8_0 as it loads about " in capsys.readouterr().err


def test_the_matmul_probe_measures_a_rate():
    rate = cost.measure_matmul_flops(torch.float32, seconds=0.05)
    assert 1e8 < rate < 1e14  # a plausible CPU rate in FLOP/s, from a real timed F.linear


def test_a_cpu_slow_in_bfloat16_is_told_to_try_float32(cpu_run, capsys, monkeypatch):
    # docs/usage.md: where bfloat16 matrix multiplies are much slower than float32, the message says so.
    rates = {torch.bfloat16: 3e9, torch.float32: 5e10}  # a CPU without bf16 units: bf16 runs at 1/16 the speed
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: rates[dtype])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert cpu_run() == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "3 GFLOP/s this CPU does now (bfloat16 matrix multiply); in float32 it does 50 GFLOP/s (--dtype fp32)" in err
    rates[torch.float32] = 4e9  # float32 not much faster: no advice
    assert cpu_run() == cli.EXIT_USER_ERROR
    assert "--dtype fp32" not in capsys.readouterr().err


def test_the_python_apis_warning_names_the_float32_keyword_not_the_flag(monkeypatch):
    # generate's warning (in_python) speaks load_pipeline's keywords: a library user has no --dtype to give.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.settings import resolve_settings

    rates = {torch.bfloat16: 3e9, torch.float32: 5e10}
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: rates[dtype])
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.0)
    request = GenerationRequest("a red fox")  # the official size: days on any CPU
    settings = resolve_settings(request, CheckpointConfigs())
    note = run_estimates.cpu_time_note(request, settings, CheckpointConfigs(), torch.bfloat16, in_python=True)
    assert "in float32 it does 50 GFLOP/s (load_pipeline(..., dtype=torch.float32))" in note
    assert "--dtype" not in note and "width=256, height=256, frames=9, steps=2" in note


# ------------------------------------------------------------------- the fixed cost of each transformer call


class OpNames(TorchDispatchMode):
    """The aten ops a piece of code runs, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("cross_dual", [False, True])
def test_the_narrowest_call_runs_every_op_of_a_real_call(cross_dual):
    # Its time is a lower bound of a real call's fixed cost only if it launches the same ops.
    config = TransformerConfig.from_dict({**TINY, "enable_text_cross_attention_dual": cross_dual})
    model, x = MotifVideoTransformer(config).eval(), inputs(batch=1, masked=False)
    with torch.inference_mode(), OpNames() as real:
        model(**x)
    narrow_call = cost.narrowest_call(config)
    with OpNames() as narrow:
        narrow_call()
    assert len(real.names) > 500 and narrow.names == real.names


def test_the_call_probe_measures_a_time():
    seconds = cost.measure_call_seconds(TransformerConfig.from_dict(TINY), seconds=0.05)
    assert 1e-5 < seconds < 10  # a plausible fixed cost of ~600 ops, from real timed calls


def test_the_call_probe_keeps_the_fastest_call(monkeypatch):
    # Other processes' work only adds to a call: the best of the timed calls is its fixed cost.
    import time

    pauses = itertools.chain([0.0, 0.2], itertools.repeat(0.0))  # the warm-up, then one call slowed down

    def narrowest_call(config, dtype):
        return lambda: time.sleep(next(pauses))

    monkeypatch.setattr(cost, "narrowest_call", narrowest_call)
    assert cost.measure_call_seconds(TransformerConfig.from_dict(TINY), seconds=0.0, calls=3) < 0.1


def test_the_fixed_cost_of_many_calls_is_counted_and_named():
    request = GenerationRequest("a fox", width=64, height=64, frames=9, steps=100_000)
    flops_only = dict(total=1e12, dtype=torch.bfloat16, throughput=1e11)  # 10 s of FLOPs
    assert run_estimates.long_cpu_run(request, **flops_only, calls=200_000, call_seconds=0.0) is None
    message = run_estimates.long_cpu_run(request, **flops_only, calls=200_000, call_seconds=0.02)  # + 4000 s
    assert message == (
        "on the CPU this run (64x64x9, 100000 steps) is 1e+12 FLOPs and 200,000 transformer calls: about 67 minutes "
        "at the 100 GFLOP/s this CPU does now (bfloat16 matrix multiply) and 20 ms per call however small (Python "
        "and op launches, timed now)"
    )
    # Where the calls are under a tenth of the time, the message is the FLOPs' as before: 4000 s + 400 s.
    message = run_estimates.long_cpu_run(request, 4e14, torch.bfloat16, 1e11, calls=200_000, call_seconds=0.002)
    assert message.endswith("is 4e+14 FLOPs: about 73 minutes at the 100 GFLOP/s this CPU does now (bfloat16 matrix "
                            "multiply)")  # fmt: skip


def test_a_tiny_model_with_many_steps_asks_first(checkpoint, tmp_path, monkeypatch, capsys):
    # Before: the estimate counted FLOPs only, and a tiny checkpoint's run of 10,000,000 steps (20,000,000 transformer
    # calls of a few ms each: days) started without asking on a fast CPU, where its FLOPs take under 3 minutes. A
    # request takes at most 1000 steps now; 10,000 videos of 1000 steps make as many calls.
    pytest.importorskip("diffusers")  # the checkpoint is written by diffusers' pipeline
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: 1e13)
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    args = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    args += ["-W", "64", "-H", "64", "--video-frames", "9"]
    assert cli.main([*args, "--steps", "1000", "-b", "10000"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "(64x64x9, 1000 steps, 10000 videos) is 1.7e+15 FLOPs and 20,000,000 transformer calls: about" in err
    assert "ms per call however small (Python and op launches, timed now)" in err and "Pass --yes" in err
    # Each video of a batch makes its calls, and an unguided run makes one per step.
    assert cli.main([*args, "--steps", "1000", "-b", "20000"]) == cli.EXIT_USER_ERROR
    assert "20000 videos) is 3.4e+15 FLOPs and 40,000,000 transformer calls" in capsys.readouterr().err
    assert cli.main([*args, "--steps", "1000", "-b", "10000", "--cfg-scale", "0"]) == cli.EXIT_USER_ERROR
    assert " and 10,000,000 transformer calls" in capsys.readouterr().err
    monkeypatch.setattr(cost, "measure_call_seconds", lambda *a, **kw: pytest.fail("timed the calls of a short run"))
    with pytest.raises(Reached):  # 2 steps: short on any CPU, nothing is timed on the way
        cli.main([*args, "--steps", "2"])
    assert "on the CPU this run" not in capsys.readouterr().err


def test_a_cpu_run_of_exactly_the_limit_is_not_long_and_an_hour_and_a_half_is_said_in_hours():
    # The note is for a run longer than LONG_CPU_RUN_SECONDS: one of exactly that many is short. Minutes are said up
    # to 90 of them; 5400 s (90 minutes) is the first said in hours.
    from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS, _duration, long_cpu_run

    request, rate = GenerationRequest("a fox"), 1e9
    assert long_cpu_run(request, LONG_CPU_RUN_SECONDS * rate, torch.bfloat16, rate) is None
    assert long_cpu_run(request, (LONG_CPU_RUN_SECONDS + 1) * rate, torch.bfloat16, rate) is not None
    assert (_duration(5399), _duration(5400)) == ("90 minutes", "1.5 hours")


def test_a_resumed_runs_time_note_names_the_steps_left():
    # A run resumed at step 30 of 50 samples 20: its note says "20 of 50 steps", as the estimate counts them.
    from motif_lite.run_estimates import long_cpu_run

    request = GenerationRequest("a fox", width=256, height=256, frames=9, steps=50)
    note = long_cpu_run(request, 1e13, torch.bfloat16, 1e9, first_step=30)
    assert note is not None and "this run (256x256x9, 20 of 50 steps)" in note, note
