"""Figures the docs give that no test computed, found by reading README.md and docs/*.md against the tests (issue
#15: the docs say exactly what the tests prove). Each test reads the doc's own words and computes the figure from
the code, so a change on either side fails here. CPU, no weights, each well under a second."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"
NUMBER = r"(\d[\d,]*(?:\.\d+)?)"  # 2,364.5, 0.8, 17; not the full stop after one
GB = 1e9  # docs/vae.md's tables are in decimal GB


def _flat(page: str) -> str:
    """The page with its whitespace made single spaces, so that a claim may wrap anywhere."""
    return " ".join((DOCS / page).read_text().split())


def _numbers(text: str, pattern: str) -> list[float]:
    """The numbers `pattern`'s groups capture in `text` (thousands separators dropped); fails when the doc no
    longer says it."""
    found = re.search(pattern, text)
    assert found is not None, f"the doc no longer matches {pattern!r}"
    return [float(group.replace(",", "")) for group in found.groups()]


def test_the_vae_cache_figures_docs_vae_gives_are_the_decoders():
    # docs/vae.md, "Memory, and when to tile": the causal caches per output pixel, in elements and bytes, the table
    # of the caches at two sizes, the decoded video's size and one 256 x 256 tile's caches, all counted from the
    # Wan2.1 decoder's own layers (`decoder_caches`, which the memory planner uses).
    from motif_lite.runtime.vae_memory import decoder_caches
    from motif_lite.vae.config import WanVAEConfig

    per_pixel = decoder_caches(WanVAEConfig()).elems_per_pixel()
    text = _flat("vae.md")
    elements, fp32, bf16 = _numbers(
        text, rf"these caches hold \*\*{NUMBER} elements per output pixel\*\* .*?: {NUMBER} bytes in fp32, {NUMBER} in"
    )
    assert (elements, fp32, bf16) == (per_pixel, 4 * per_pixel, 2 * per_pixel)
    for width, height in [(832, 480), (1280, 736)]:
        row = _numbers(text, rf"\| {width} x {height} \| {NUMBER} GB \| {NUMBER} GB \|")
        assert row == [round(per_pixel * width * height * size / GB, 1) for size in (4, 2)], (width, height)
    # The decoded video: the tensor `decode` preallocates for those latents, by an fp32 VAE (built on the meta
    # device), not the doc's own 3 x 4 bytes again.
    from motif_lite.vae.model import WanVAE

    with torch.device("meta"):
        vae = WanVAE(WanVAEConfig())
        latents = torch.empty(vae.config.latent_shape(1280, 736, 121))
    out = vae._empty_video(latents, "meta")
    pixel_bytes, video = _numbers(
        text, rf"The output itself is {NUMBER} bytes per pixel per frame in fp32 \({NUMBER} GB for 121 x 1280 x 736\)"
    )
    assert tuple(out.shape[2:]) == (121, 736, 1280) and out.dtype == torch.float32
    assert (pixel_bytes, video) == (out.shape[1] * out.element_size(), round(out.numel() * out.element_size() / GB, 2))
    latent_side, _, side, other_side, tile = _numbers(
        text,
        rf"`vae.decode\(z, tile=VAETile\({NUMBER}, {NUMBER}\)\)` decodes one {NUMBER} x {NUMBER}-pixel tile .*? "
        rf"one tile's caches \(~{NUMBER} GB fp32\)",
    )
    assert side == other_side == latent_side * WanVAEConfig().spatial_factor
    assert tile == round(per_pixel * side * side * 4 / GB, 1)


def test_the_transformer_config_defaults_are_the_architecture_docs_transformer_names():
    # docs/transformer.md, "Config": "Its defaults are the official 2B architecture: 12 heads × 128, ...": what a
    # config.json without these keys, and a GGUF file without any config, gets (the parameter count the README
    # gives pins the sizes, not the patch or the RoPE axes).
    from motif_lite.config import TransformerConfig

    config = TransformerConfig()
    numbers = _numbers(
        _flat("transformer.md"),
        rf"Its defaults are the official 2B architecture: {NUMBER} heads × {NUMBER}, {NUMBER} dual-stream blocks, "
        rf"{NUMBER} single-stream blocks of which the last {NUMBER} are the DDT decoder, patch {NUMBER}×{NUMBER}×"
        rf"{NUMBER}, {NUMBER} → {NUMBER} channels, text {NUMBER}, image {NUMBER}, RoPE axes \({NUMBER}, {NUMBER}, "
        rf"{NUMBER}\)",
    )
    assert numbers == [
        config.num_attention_heads, config.attention_head_dim, config.num_layers, config.num_single_layers,
        config.num_decoder_layers, config.patch_size_t, config.patch_size, config.patch_size, config.in_channels,
        config.out_channels, config.text_embed_dim, config.image_embed_dim, *config.rope_axes_dim,
    ]  # fmt: skip


def test_the_quantizer_classes_shares_docs_quantize_gives_are_the_architectures():
    # docs/quantize.md, "Why these rules": "embedders and head are tiny (17 M weights, 0.8 % at 2B)" and "the AdaLN
    # modulation linears (25 % of the 2B weights)", as the quantizer classes the tensors (`tensor_class`), counted
    # on the official architecture built on the meta device.
    from motif_lite.config import TransformerConfig
    from motif_lite.model.transformer import MotifVideoTransformer
    from motif_lite.quantize.recipes import tensor_class

    with torch.device("meta"):
        model = MotifVideoTransformer(TransformerConfig())
    weights: dict[str, int] = {}
    for name, tensor in model.state_dict().items():
        role = tensor_class(name, tuple(tensor.shape))
        weights[role] = weights.get(role, 0) + tensor.numel()
    total = sum(weights.values())
    text = _flat("quantize.md")
    millions, share = _numbers(text, rf"embedders and head are tiny \({NUMBER} M weights, {NUMBER} % at 2B\)")
    assert (millions, share) == (round(weights["embed/head"] / 1e6), round(100 * weights["embed/head"] / total, 1))
    (modulation,) = _numbers(text, rf"the AdaLN modulation linears \({NUMBER} % of the 2B weights\)")
    assert modulation == round(100 * weights["modulation"] / total)


def _repeats_timestep_999(steps: int, shift: float) -> bool:
    """Whether the DPM++ table (diffusers' own, bit for bit: tests/test_sampling.py) starts at one timestep twice."""
    from motif_lite.sampling import dpm_schedule

    first, second = dpm_schedule(steps, shift).timesteps[:2].tolist()
    return first == second


def test_the_dpm_shift_edges_docs_sampling_gives_are_the_tables():
    # docs/sampling.md, "Schedules": the shift from which the DPM++ table starts at timestep 999 twice (the shifts a
    # run refuses where diffusers fails: tests/test_dpm_shift_edge.py), per step count, and the step count from
    # which the official shift 15 does it.
    from motif_lite.request import T2V_SHIFT

    said = re.search(
        r"\(at (\d+) steps from a shift of about (\S+), at (\d+) steps about (\S+), at (\d+) steps about (\S+), "
        r"at (\d+) steps about (\S+): the official shift (\S+) from (\d+) steps on;",
        _flat("sampling.md"),
    )
    assert said is not None, "docs/sampling.md no longer gives the DPM++ shift edges"
    for steps, edge in zip(said.groups()[0:8:2], said.groups()[1:8:2], strict=True):
        good, bad = 1.0, 1e4  # bisected to float rounding, as test_dpm_shift_edge.py bisects diffusers
        for _ in range(60):
            middle = (good * bad) ** 0.5
            good, bad = (good, middle) if _repeats_timestep_999(int(steps), middle) else (middle, bad)
        decimals = len(edge.partition(".")[2])
        assert round(good, decimals) == float(edge), (steps, good)
    official, first = float(said[9]), int(said[10])
    assert official == T2V_SHIFT
    assert _repeats_timestep_999(first, official) and not _repeats_timestep_999(first - 1, official)


def test_the_small_plan_docs_memory_gives_is_the_benchmarks_dry_run_row():
    # docs/memory.md, "On a 6-8 GB GPU": "832x480x121 plans 3.54 GiB at `--vram 4`" is the device peak of
    # docs/benchmarks.md's "Low-memory plans" row for that run, which tests/test_doc_claims.py checks against a dry run.
    (said,) = _numbers(_flat("memory.md"), rf"832x480x121 plans {NUMBER} GiB at `--vram 4`")
    row = re.search(
        rf"^\| 832x480x121 \| `--vram 4 -W 832 -H 480` \| {NUMBER} / ~", (DOCS / "benchmarks.md").read_text(), re.M
    )
    assert row is not None, "docs/benchmarks.md no longer has the 832x480x121 --vram 4 row"
    assert said == float(row[1])


def test_the_reserve_docs_memory_gives_for_vram_8gb_is_the_dry_runs(no_network, no_weights, monkeypatch, capsys):
    # docs/memory.md, "What to do when it does not fit": a dry run for a GPU this machine lacks, at `--vram 8GB` with
    # the bf16 transformer, needs "~8.62 GiB" free: the reserve its card's-size note names (tests/test_preflight.py
    # checks the note's wording, not the doc's figure).
    from motif_lite import cli

    (said,) = _numbers(_flat("memory.md"), rf"\(`--vram 8GB`, with the bf16 transformer: ~{NUMBER} GiB\)")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU planned for is another machine's
    assert cli.main(["run", "--dry-run", "--device", "cuda", "--vram", "8GB", "-p", "x"]) == 0
    err = capsys.readouterr().err
    note = re.search(
        r"note: --vram 8 is what this plan may allocate, not the GPU's size: it needs ~(\S+) GiB free", err
    )
    assert note is not None, err
    assert float(note[1]) == said


def test_the_card_size_margins_docs_memory_gives_are_the_edges_a_vram_reads_as_one():
    # docs/memory.md, the same paragraph: "nvidia-smi's total in MiB, at most 2 % under one ... or, with ECC on, ...
    # at most 0.2 % under 15/16 of one", and its examples of a card's size and of none. tests/test_preflight.py's
    # examples pin the margins only loosely (2 % anywhere from 1.4 % to 3.5 %); here the whole MiB at each edge, for
    # a 24 GiB card, reads as a card's size and the one under it does not.
    import math

    from motif_lite.cli.flag_numbers import vram_gib
    from motif_lite.cli.run_prepare import _card_size_typed

    text = _flat("memory.md")
    whole, ecc, share_top, share_bottom = _numbers(
        text,
        rf"total in MiB, at most {NUMBER} % under one \(.*?\) or, with ECC on, which keeps a sixteenth back, at most "
        rf"{NUMBER} % under {NUMBER}/{NUMBER} of one",
    )

    def reads_as_a_card(mib: int) -> bool:
        assert mib % 64, mib  # a multiple of 64 MiB is no card's size whatever the margins: no edge to test there
        return _card_size_typed(mib / 1024) == f"{mib}MB"

    card = 24 * 1024
    for total, margin in ((card, whole), (card * share_top / share_bottom, ecc)):
        edge = math.ceil(total * (1 - margin / 100))  # the fewest whole MiB within the margin
        assert reads_as_a_card(edge) and not reads_as_a_card(edge - 1), (total, margin, edge)
    cards = re.search(r"at most .*? % under one \(`--vram (\d+MB)` for a 24 GB card, (\d+MB) for an 80 GB H100\)", text)
    with_ecc = re.search(r"under \d+/\d+ of one \((\d+MB) for a 24 GB A10G\)", text)
    none = re.search(r"a `--vram` such as (\S+) \(as the note advises\), (\S+), (\S+) \(free memory\), a multiple of "
                     r"64 MiB \((\S+)\) or a round number of MiB, a multiple of 100 \((\S+)\), no card's size, "
                     r"gets none",
                     text)  # fmt: skip
    assert cards and with_ecc and none, "docs/memory.md no longer gives the card's-size examples"
    for typed in (*cards.groups(), *with_ecc.groups()):
        assert _card_size_typed(vram_gib(typed)) == typed
    for typed in none.groups():
        assert _card_size_typed(vram_gib(typed)) is None, typed


# What a flag's metavar says it takes, where that is a file or folder; -m, -o, -i and --gguf name none.
_PATH_METAVARS = {"FILE", "FILE[:STRENGTH]", "DIR", "CLIP", "LATENTS", "IMAGE"}
_PATH_FLAGS = {"-m", "-o", "-i", "--gguf"}


@pytest.mark.skipif(os.name == "nt", reason="a Windows path is a path there")
def test_every_flag_that_takes_a_path_refuses_a_windows_path_with_the_path_to_give():
    # docs/usage.md, "Windows paths are names here": "Every flag that takes a path ... refuses one ... with the path
    # to give instead". tests/test_paths.py gives a Windows path to the quantizer's flags and tells each form apart;
    # here every flag and argument of every command whose value is a file or folder refuses one as it is read.
    import argparse

    from motif_lite import cli

    (commands,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    checked = set()
    for command, parser in commands.choices.items():
        for action in parser._actions:
            if action.metavar not in _PATH_METAVARS and not _PATH_FLAGS & set(action.option_strings):
                continue
            name = f"{command} {(action.option_strings or [action.dest])[0]}"
            with pytest.raises(argparse.ArgumentTypeError, match="/mnt/c/Users/me/Pictures/fox.png"):
                action.type("C:\\Users\\me\\Pictures\\fox.png")
            checked.add(name)
    # The metavars and flags above still find the path flags (a renamed metavar would leave them unchecked).
    expected = {"run -m", "run -o", "run -i", "run --lora", "run --resume", "run --settings-from", "run --extend"}
    expected |= {"decode latents", "serve --data", "serve --lora-dir", "check --gguf", "verify --vae"}
    assert expected <= checked, checked


def test_a_clip_to_extend_on_a_folder_without_the_image_processor_is_refused_before_anything_loads(
    shared_checkpoint, tmp_path, capsys, monkeypatch, no_network
):
    # docs/usage.md, "Image-to-video": on a local folder without feature_extractor/, "`-i` and `--extend` are refused
    # before anything loads, a dry run's too, with the `hf download` command that adds it". tests/
    # test_checkpoint_folders.py gives `-i`; the clip's last frame is read by the same image processor.
    import json
    import shutil

    import numpy as np

    import motif_lite.encoders.text
    from motif_lite import cli
    from motif_lite.io.video import write_video

    root = tmp_path / "text-to-video"
    shutil.copytree(shared_checkpoint[0], root, ignore=shutil.ignore_patterns("feature_extractor"))
    index = json.loads((root / "model_index.json").read_text())
    del index["feature_extractor"]  # as a text-to-video folder's lists none
    (root / "model_index.json").write_text(json.dumps(index))
    clip = write_video(np.zeros((5, 32, 32, 3), np.uint8), tmp_path / "clip.mp4", 24)

    def loaded(*args, **kwargs):
        raise AssertionError("the text encoder loaded before the refusal")

    monkeypatch.setattr(motif_lite.encoders.text, "load_text_encoder", loaded)
    size = ["-W", "32", "-H", "32", "--video-frames", "5", "--steps", "1", "--device", "cpu"]
    for dry_run in (["--dry-run"], []):
        argv = ["run", "-m", str(root), "--extend", str(clip), "-p", "fox", *size, *dry_run]
        code = cli.main([*argv, "-o", str(tmp_path / "longer.mp4")])
        err = capsys.readouterr().err
        assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
        assert f"error: {root} has no feature_extractor/preprocessor_config.json" in err, err
        assert f"--include 'feature_extractor/*' --local-dir {root}" in err, err


def test_the_gpu_reproducibility_figures_docs_usage_gives_are_the_tests_and_verifys():
    # docs/usage.md, "Making a video again from its file", "On a GPU, and on another machine": batched guidance
    # "within 1e-5 of the latents' scale in fp32" (tests/test_batched_guidance.py's bound) and verify's bf16
    # tolerance for the frames, "a relative difference of 5e-2" (tests/test_doc_claims.py ties the figure in
    # "Checking against the reference", not this one).
    import inspect

    import test_batched_guidance

    from motif_lite.verify import TOLERANCES

    text = _flat("usage.md").split("**On a GPU, and on another machine**")[1].split(" - **")[0]
    (batched,) = _numbers(text, r"batched guidance within ([\d.e-]+) of the latents' scale in fp32")
    (frames,) = _numbers(text, r"for the frames in bf16: a relative difference of ([\d.e-]+)")
    bound = re.search(r"<= ([\d.e-]+) \* scale", inspect.getsource(test_batched_guidance.assert_tight))
    assert bound is not None and float(bound[1]) == batched
    assert TOLERANCES[torch.bfloat16]["frames"] == frames


def test_a_dry_runs_negative_prompt_of_40_characters_pastes_back_after_n_and_a_longer_one_is_cut(
    shared_checkpoint, tmp_path, capsys
):
    # docs/usage.md, "Dry runs": "a negative prompt of up to 40 characters in the settings table" pastes back after
    # `-n`. tests/test_cli_dry_run_notes.py pastes a 10-character one; here the bound itself, and one past it.
    import shlex

    from motif_lite import cli

    (bound,) = _numbers(_flat("usage.md"), r"as does a negative prompt of up to (\d+) characters in the settings table")
    for negative, whole in [('it\'s "blur" ' + "x" * (int(bound) - 12), True), ("y" * (int(bound) + 1), False)]:
        argv = ["run", "-m", str(shared_checkpoint[0]), "-p", "fox", "-n", negative, "--dry-run"]
        code = cli.main([*argv, "-o", str(tmp_path / "f.mp4")])
        out, err = capsys.readouterr()
        assert code == 0, err
        shown = re.search(r"^  negative +flag +(.*)$", out, re.MULTILINE).group(1)
        assert (shlex.split(shown) == [negative]) == whole, (len(negative), shown)
        assert shown.endswith("...") != whole, shown


def test_previews_that_failed_alike_are_counted_in_one_warning_when_the_run_ends(tmp_path, caplog, monkeypatch):
    # docs/usage.md, "Previews while sampling": failed previews after the first are counted, "one warning says how
    # many, when a preview is written again or the run ends". tests/test_preview.py's run writes one again; this
    # one ends.
    import logging

    import numpy as np

    from motif_lite.errors import MotifLiteError
    from motif_lite.io import preview as preview_io

    def full_disk(*args, **kwargs):
        raise MotifLiteError("cannot write preview: No space left on device")

    monkeypatch.setattr(preview_io, "write_preview", full_disk)
    previews = preview_io.PreviewFile(tmp_path / "p.png", fps=6.0)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        for done in range(1, 4):
            previews(done, 9, np.zeros((3, 8, 12, 3), dtype=np.uint8))
            previews._pending.result()  # each written before the next: none dropped
        previews.close()
    said = [record.getMessage() for record in caplog.records]
    assert said == ["preview not written: cannot write preview: No space left on device",
                    "the preview was not written 2 more times for that reason"], said  # fmt: skip


def test_a_resume_that_only_decodes_still_refuses_a_vae_file_that_is_gone(shared_checkpoint, tmp_path, capsys):
    # docs/usage.md, "Settings come from the file": a model file that is no longer there is an error naming the flag
    # to give again, "of a file whose sampling is done, only the VAE's". tests/test_resume.py shows the sampling
    # model's files (--gguf, --lora) are let go; here the VAE, which the decode reads, is still asked for.
    from test_resume import _with_run_flags, assert_user_error, request, run_cli, stop_at

    from motif_lite import load_pipeline

    pipe = load_pipeline(shared_checkpoint[0], dtype=torch.float32, device="cpu", kernels="torch")
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4", steps=2), on_progress=stop_at(2))
    path = tmp_path / "fox.latents.safetensors"
    vae = tmp_path / "moved" / "vae.safetensors"
    _with_run_flags(path, vae=str(vae))
    code, _, err = run_cli(capsys, "--resume", str(path))
    assert_user_error(code, err, f"the run being resumed had --vae {vae}, which is not there", "give --vae again")
    assert path.is_file()


def test_a_videos_stored_settings_keep_the_machine_under_ran_on_only(shared_checkpoint, tmp_path):
    # docs/usage.md, "On a GPU, and on another machine": the file records where it was made under `ran_on` (the
    # device, the versions of torch and the rest), a record beside the settings, which hold nothing of the machine;
    # and motif-lite's own version (the page once said it stored no software's version at all).
    from motif_lite import cli
    from motif_lite.io.settings_file import read_settings
    from motif_lite.version import VERSION

    flags = ["-p", "fox", "-W", "32", "-H", "32", "--video-frames", "5", "--steps", "1", "--dtype", "fp32"]
    argv = ["run", "-m", str(shared_checkpoint[0]), *flags, "--device", "cpu", "--kernels", "torch", "--yes"]
    assert cli.main([*argv, "-o", str(tmp_path / "a_%03d.png")]) == 0
    stored = read_settings(tmp_path / "a_000.png").values

    def keys(value: object) -> list[str]:
        if isinstance(value, dict):
            return [key for name, inner in value.items() for key in [name, *keys(inner)]]
        return [key for inner in value for key in keys(inner)] if isinstance(value, list) else []

    text = _flat("usage.md")
    assert "the file records where it was made (`ran_on`: the device, the GPU, the versions of torch" in text
    assert stored["version"] == VERSION and "keep the GPU, motif-lite, torch and the model" in text
    ran_on = stored.pop("ran_on")
    assert (ran_on["device"], ran_on["torch"], ran_on["motif_lite"]) == ("cpu", torch.__version__, VERSION)
    machine = re.compile(r"device|gpu|cuda|cudnn|torch|triton|python|host", re.IGNORECASE)
    assert not [key for key in keys(stored) if machine.search(key)], stored
    settings = str({key: value for key, value in stored.items() if key not in ("prompt", "negative_prompt")})
    assert torch.__version__ not in settings and not re.search(r"\bcpu\b", settings, re.IGNORECASE), settings


def test_a_record_made_on_a_rocm_build_names_the_gpus_architecture_and_rocms_version(monkeypatch):
    # docs/usage.md, "Output files": `ran_on` holds the GPU's `compute_capability` (`gpu_arch` on AMD) and the
    # version of `cuda` (or `rocm`). tests/test_settings_from.py checks an NVIDIA GPU's; this is a ROCm build's.
    import types

    from motif_lite.ran_on import ran_on_record

    monkeypatch.setattr(torch.version, "hip", "6.2.41133")
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "AMD Instinct MI300X")
    properties = types.SimpleNamespace(gcnArchName="gfx942:sramecc+:xnack-")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: properties)
    ran_on = ran_on_record("cuda:0", "triton")
    assert (ran_on["device_name"], ran_on["gpu_arch"], ran_on["rocm"]) == ("AMD Instinct MI300X", "gfx942", "6.2.41133")
    assert "compute_capability" not in ran_on and "cuda" not in ran_on  # no NVIDIA figures on an AMD GPU
    usage = _flat("usage.md")
    assert "`compute_capability` (`gpu_arch` on AMD)" in usage and "`cuda` (or `rocm`)" in usage


@pytest.mark.parametrize("typed", [["--overlap", "64"], ["--temporal_size", "64"], ["temporal_size=64"]])
def test_every_widget_of_comfyuis_tiled_vae_decode_the_docs_name_is_told_the_memory_plan(capsys, typed):
    # docs/usage.md, "What to use instead": VAE Decode (Tiled)'s `tile_size`, `overlap`, `temporal_size`,
    # `temporal_overlap` are memory switches told that the plan tiles by itself. tests/test_cli_comfyui.py checks
    # tile_size and temporal_overlap; these are the other two.
    from test_cli_comfyui import _hint, _refusal

    name = typed[0].lstrip("-").partition("=")[0]
    assert "VAE Decode (Tiled)'s `tile_size`, `overlap`, `temporal_size`, `temporal_overlap`" in _flat("usage.md")
    hint = _hint(_refusal(capsys, typed), typed[0])
    assert name in typed[0] and hint.startswith("memory is planned here, not switched: a run streams"), hint


def test_a_misspelled_command_with_a_double_quote_ends_in_the_older_powershells_comment(capsys, monkeypatch):
    # docs/usage.md, "On Windows": a command line typed again from your words, "a prompt given where the command
    # goes, a misspelled command", ends where a word holds a `"` in a PowerShell comment for 5.1 and 7.0-7.2, as
    # `there type 'a sign that says \"hi\"'`. tests/test_windows_quoting.py checks the prompt's line; this is the
    # misspelled command's, and the doc's example is what the code writes for that prompt.
    import sys

    from test_windows_quoting import powershell_arguments, windows_powershell_arguments

    from motif_lite import cli

    prompt = 'a sign that says "hi"'
    with monkeypatch.context() as windows:
        windows.setattr(sys, "platform", "win32")
        code = cli.main(["rn", "-p", prompt])
    line, _, comment = capsys.readouterr().err.strip().partition("did you mean motif-lite ")[2].partition("  # ")
    assert code == cli.EXIT_USER_ERROR
    assert powershell_arguments(line) == ["run", "-p", prompt], line  # PowerShell 7.3 and later
    older = comment.partition("there type ")[2]
    assert windows_powershell_arguments(line.replace("'a sign that says \"hi\"'", older)) == ["run", "-p", prompt]
    assert f"(`there type {older}`)" in _flat("usage.md"), older


def test_under_torchrun_a_resume_file_that_cannot_be_read_is_not_left_to_rank_0(tmp_path, monkeypatch):
    # docs/usage.md, "Killed in the decode": under torchrun the ranks other than 0 end at once for a file whose
    # sampling is done, but a file that cannot be read is "every rank's error": rank 1 goes on to join the process
    # group, where each rank reads it and says why. tests/test_resume.py checks the finished file's side.
    from motif_lite import cli
    from motif_lite.runtime import parallel

    class Joined(Exception):
        pass

    def join(device: str) -> None:
        raise Joined

    monkeypatch.setattr(parallel, "start", join)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)  # torchrun's
    unreadable = tmp_path / "fox.latents.safetensors"
    unreadable.write_text("not a latents file")
    for path in (unreadable, tmp_path / "gone.latents.safetensors"):
        with pytest.raises(Joined):
            cli.main(["run", "--device", "cpu", "--resume", str(path)])
    assert "one that cannot is every rank's error" in _flat("usage.md")


def test_with_warnings_ignored_a_command_prints_none_and_check_still_lists_its_findings(shared_checkpoint, tmp_path,
                                                                                         capsys):  # fmt: skip
    # docs/testing.md: "with `PYTHONWARNINGS=ignore` exported a command prints none of them ..., while `motif-lite
    # check` still lists its findings". A misspelt config key (rope_dim) is such a warning; under Python's default
    # filter the same dry run prints it, so its absence below is the filter's doing.
    import json
    import shutil
    import warnings

    from motif_lite import cli

    copy = tmp_path / "ckpt"
    shutil.copytree(shared_checkpoint[0], copy)
    config = copy / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "rope_dim": [8, 4, 4]}))
    said = "ignoring unknown transformer config keys ['rope_dim']"
    run = ["run", "-m", str(copy), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1",
           "--device", "cpu", "--dry-run"]  # fmt: skip
    for exported, printed in (("default", True), ("ignore", False)):
        with warnings.catch_warnings():
            warnings.simplefilter(exported)  # as PYTHONWARNINGS=<exported> sets it
            assert cli.main(run) == 0
            assert (said in capsys.readouterr().err) == printed, exported
            assert cli.main(["check", "-m", str(copy)]) == 0
            assert f"warning  transformer/config.json: {said}" in capsys.readouterr().out.splitlines(), exported
    assert "with `PYTHONWARNINGS=ignore` exported a command prints none of them" in " ".join(
        (DOCS / "testing.md").read_text().split()
    )


def test_the_names_and_commands_docs_contributing_gives_are_the_projects():
    # docs/contributing.md names what a change and a new kernel touch; tests/test_docs.py checks that its files
    # exist, this that the names in them, the test extra, the `slow` marker and what .ci/run installs are as said.
    import ast
    import inspect

    from motif_lite.model.ops import Ops, rms_norm_rope
    from motif_lite.runtime import kernels
    from motif_lite.weights.quant_linear import QuantizedLinear

    root = DOCS.parent
    page = " ".join((DOCS / "contributing.md").read_text().split())
    # The test extra's list, read as text: tomllib is Python 3.11's, and the project runs on 3.10.
    extra = re.search(r"^test = \[(.*?)^\]", (root / "pyproject.toml").read_text(), re.MULTILINE | re.DOTALL).group(1)
    assert '`pip install -e ".[test]"` brings pytest, diffusers (the reference) and ruff' in page
    assert all(re.search(rf'^\s*"{name}\b', extra, re.MULTILINE) for name in ("pytest", "diffusers", "ruff")), extra
    assert '`pytest -m "not slow"`' in page or 'pytest -m "not slow"' in page
    full_size = ast.parse((root / "tests" / "test_full_size.py").read_text())
    assert "pytest.mark.slow" in ast.unparse(full_size), "test_full_size.py is no longer marked slow"
    ci = (root / ".ci" / "run").read_text()
    assert "it installs torch 2.13.0 with pip and, where they are missing, g++ and Chromium with apt-get" in page
    assert "pip install" in ci and "torch==2.13.0" in ci and "apt-get install" in ci and "g++" in ci
    assert "chromium" in ci
    # A new kernel's steps.
    assert Ops().rms_norm_rope is rms_norm_rope and "kernel" in inspect.getsource(QuantizedLinear.__init__)
    assert "FallbackOp(name, kernel, reference, strict=strict)" in page
    assert list(inspect.signature(kernels.FallbackOp).parameters)[:4] == ["name", "kernel", "reference", "strict"]
    assert callable(kernels.triton_ops) and callable(kernels.fallbacks)
    sources = {name: (root / name).read_text() for name in ("kernels/errors.py", "tests/kernels_interp.py",
                                                           "tests/test_kernels_compile.py")}  # fmt: skip
    assert "class KernelInputError" in sources["kernels/errors.py"]
    assert all(
        f"def {name}(" in sources["tests/kernels_interp.py"] for name in ("kernel_runner", "assert_bf16_error_within")
    )
    compile_test = sources["tests/test_kernels_compile.py"]
    assert "def compile_for_h100(kernel, pointers: dict[str, str], constexprs: dict[str, object]" in compile_test
    assert "def launches(" in compile_test and "def test_launch_fits_the_gpu(" in compile_test
    assert (root / "bench" / "bench_kernels.py").is_file()
    gpus = re.search(r"^GPUS = \{(.*?)^\}", compile_test, re.MULTILINE | re.DOTALL).group(1)
    capabilities = [int(found) for found in re.findall(r"^\s+(\d+): Gpu\(", gpus, re.MULTILINE)]
    assert (min(capabilities), max(capabilities)) == (75, 120) and {89, 90} <= set(capabilities), capabilities
    # By default the test compiles the launches DEFAULT_CASES names, not every one a new kernel's `launches` gives.
    assert "only the launches named in `DEFAULT_CASES` (add the kernel's there)" in page
    assert (
        "(capability, name) in DEFAULT_CASES" in compile_test
        and 'get("MOTIF_LITE_ALL_LAUNCHES") == "1"' in compile_test
    )
