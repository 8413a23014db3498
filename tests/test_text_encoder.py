"""TextEncoder parity with the diffusers Motif-Video pipelines on a tiny random T5Gemma2 checkpoint (fp32)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from tiny_text import TINY_IMAGE_TOKENS, TINY_TEXT_HIDDEN, TINY_VISION_HIDDEN, make_tiny_text_encoder

from motif_lite.encoders.text import TextEncoder, load_text_encoder
from motif_lite.errors import CheckpointError, ConfigError

# Longer than the tiny sliding window (6) so the window really cuts keys; different lengths so one row pads.
PROMPTS = ["a red fox jumps over a sleeping dog, cinematic", "snow at dusk"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_text")
    make_tiny_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def encoder(ckpt) -> TextEncoder:
    return load_text_encoder(ckpt, dtype=torch.float32, device="cpu")


def _reference_pipeline(ckpt, image2video: bool):
    """The diffusers pipeline built around our tiny text encoder (tiny transformer and VAE, never run)."""
    from diffusers import (
        AutoencoderKLWan,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        MotifVideoImage2VideoPipeline,
        MotifVideoPipeline,
        MotifVideoTransformer3DModel,
    )
    from transformers import AutoTokenizer, SiglipImageProcessor, T5Gemma2Encoder

    transformer = MotifVideoTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_single_layers=1,
        text_embed_dim=TINY_TEXT_HIDDEN,
        image_embed_dim=TINY_VISION_HIDDEN,
        rope_axes_dim=(2, 2, 4),
    )
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    cls = MotifVideoImage2VideoPipeline if image2video else MotifVideoPipeline
    return cls(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=15.0),
        vae=vae,
        text_encoder=T5Gemma2Encoder.from_pretrained(ckpt / "text_encoder", dtype=torch.float32).eval(),
        tokenizer=AutoTokenizer.from_pretrained(ckpt / "tokenizer"),
        transformer=transformer,
        guider=ClassifierFreeGuidance(guidance_scale=5.0),
        feature_extractor=SiglipImageProcessor.from_pretrained(ckpt / "feature_extractor"),
    )


@pytest.mark.parametrize("image2video", [False, True])
def test_encode_matches_reference_padded_and_masked(ckpt, encoder, image2video):
    pipe = _reference_pipeline(ckpt, image2video)
    with torch.no_grad():
        ref, _, ref_mask, _ = pipe.encode_prompt(PROMPTS, negative_prompt=None, device=torch.device("cpu"))
    embeds, mask = encoder.encode(PROMPTS)

    assert ref.shape[1] == 512 and ref_mask.shape == (2, 512)
    lengths = mask.sum(1).tolist()
    assert lengths == ref_mask.sum(1).tolist()
    assert embeds.shape == (2, max(lengths), TINY_TEXT_HIDDEN) and mask.dtype == torch.bool
    assert lengths[0] != lengths[1] and lengths[0] > 12  # one row is padded; the window (6) truncates keys
    torch.testing.assert_close(mask, ref_mask[:, : max(lengths)])
    for row, n in enumerate(lengths):
        torch.testing.assert_close(embeds[row, :n], ref[row, :n], rtol=1e-5, atol=1e-5)


def test_an_empty_prompt_is_bos_alone_as_in_the_reference(ckpt, encoder):
    # Image-to-video takes an empty prompt (request.field_checks.check_prompt): it must be the reference's condition.
    pipe = _reference_pipeline(ckpt, image2video=True)
    with torch.no_grad():
        ref, _, ref_mask, _ = pipe.encode_prompt("", negative_prompt=None, device=torch.device("cpu"))
    embeds, mask = encoder.encode([""])
    assert int(ref_mask.sum()) == 1 and embeds.shape == (1, 1, TINY_TEXT_HIDDEN) and bool(mask.all())
    torch.testing.assert_close(embeds[0], ref[0, :1], rtol=1e-5, atol=1e-5)


def test_single_prompt_equals_its_row_in_a_batch(encoder):
    batch, mask = encoder.encode(PROMPTS)
    alone, alone_mask = encoder.encode(PROMPTS[1])
    n = int(mask[1].sum())
    assert alone.shape[1] == n and bool(alone_mask.all())
    torch.testing.assert_close(alone[0], batch[1, :n], rtol=1e-5, atol=1e-5)


def test_long_prompt_truncated_like_reference(ckpt, encoder, caplog):
    pipe = _reference_pipeline(ckpt, image2video=False)
    long_prompt = "abc " * 10  # 40 characters -> 41 tokens with <bos>
    with torch.no_grad():
        ref, _, ref_mask, _ = pipe.encode_prompt(long_prompt, max_sequence_length=16, device=torch.device("cpu"))
    embeds, mask = encoder.encode([long_prompt], max_length=16, labels=["negative prompt"])
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("motif_lite")]  # diffusers logs too
    assert ours == ["negative prompt is 41 tokens; dropped the last 25 (limit 16)"]
    assert bool(ref_mask.all()) and embeds.shape[1] == 16 and bool(mask.all())
    torch.testing.assert_close(embeds, ref, rtol=1e-5, atol=1e-5)


def test_a_long_prompt_is_cut_beside_a_short_one(encoder, caplog):
    # The prompt and the negative prompt are tokenized together: one short prompt does not spare the other its cut.
    from motif_lite.encoders.text import long_prompts

    embeds, _ = encoder.encode(["abc", "abc " * 10], max_length=16, labels=["prompt", "negative prompt"])
    assert embeds.shape[1] == 16
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("motif_lite")]
    assert ours == ["negative prompt is 41 tokens; dropped the last 25 (limit 16)"]
    assert list(long_prompts(encoder.tokenizer, {"prompt": "a fox", "negative prompt": "abc " * 600})) == [
        "negative prompt"
    ]


def test_a_long_prompt_is_measured_as_encode_cuts_it_before_the_weights_load(encoder, caplog):
    # `motif-lite run` says it before the load (with the last words kept) from `prompt_truncation`, and drops the
    # encode's own warning by its text: the two must agree.
    from motif_lite.encoders.text import fits_without_tokenizer, prompt_truncation

    long_prompt = "abc " * 10
    cut = prompt_truncation(encoder.tokenizer, long_prompt, max_length=16)
    encoder.encode([long_prompt], max_length=16, labels=["negative prompt"])
    assert [r.getMessage() for r in caplog.records if r.name.startswith("motif_lite")] == [
        cut.warning("negative prompt")
    ]
    assert cut.kept_ending == "abc abc abc abc"  # 15 characters after <bos>
    assert "it reads up to '... abc abc abc abc' and drops the last 25" in cut.advice("negative prompt")
    assert prompt_truncation(encoder.tokenizer, "abc " * 3, max_length=16) is None
    letters = " ".join("abcdefghijklmnopqrstuvwxyz")  # one token a character: 31 kept after <bos>
    assert prompt_truncation(encoder.tokenizer, letters, max_length=32).kept_ending == "i j k l m n o p"  # 8 words
    # The length alone clears a prompt only where byte fallback (one token per byte) keeps it within the limit.
    worst = "\u00e9" * 252  # 504 bytes, each a token of its own
    assert fits_without_tokenizer(worst) and prompt_truncation(encoder.tokenizer, worst, max_length=513) is None
    assert len(encoder.tokenizer(worst)["input_ids"]) <= 512


def test_a_prompt_its_length_alone_clears_is_never_cut(encoder):
    # `fits_without_tokenizer` spares `motif-lite run` the tokenizer: a prompt it clears must fit the 512 tokens even
    # in characters the tokenizer spells byte by byte (two tokens each), with its special tokens added.
    from motif_lite.encoders.text import fits_without_tokenizer, prompt_truncation

    prompts = ["\u00e9" * count + "a" * odd for count in range(248, 262) for odd in (0, 1)]
    cleared = [prompt for prompt in prompts if fits_without_tokenizer(prompt)]
    assert cleared and len(cleared) < len(prompts)  # both sides of its bound
    for prompt in cleared:
        assert len(encoder.tokenizer(prompt)["input_ids"]) <= 512
    assert all(prompt_truncation(encoder.tokenizer, prompt) is None for prompt in cleared)
    longest = max(prompts, key=len)
    assert len(encoder.tokenizer(longest)["input_ids"]) > 512 and prompt_truncation(encoder.tokenizer, longest)


def test_a_prompt_of_exactly_the_limit_is_not_cut(encoder, caplog):
    from motif_lite.encoders.text import prompt_truncation

    prompt = "abc " * 10
    tokens = len(encoder.tokenizer(prompt)["input_ids"])
    assert prompt_truncation(encoder.tokenizer, prompt, max_length=tokens) is None
    encoder.encode([prompt], max_length=tokens)  # nor does the encode say it is
    assert not [record for record in caplog.records if record.name.startswith("motif_lite")]
    cut = prompt_truncation(encoder.tokenizer, prompt, max_length=tokens - 1)  # one over: its one token dropped
    assert (cut.tokens, cut.kept) == (tokens, tokens - 1)
    encoder.encode([prompt, "abc"], max_length=tokens - 1)  # in a batch: only the prompt cut is named
    said = [record.getMessage() for record in caplog.records if record.name.startswith("motif_lite")]
    assert said == [cut.warning("prompt 0")]


def test_image_preprocessor_loads_without_the_torchvision_warning(ckpt):
    # transformers warns when its default SiglipImageProcessor cannot find torchvision; we name the class it
    # would fall back to, so image-to-video prints nothing. A fresh process: the warning is given once per process.
    code = (
        "import sys; from motif_lite.encoders.text import _siglip_processor_class as c; "
        "print(type(c().from_pretrained(sys.argv[1])).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ckpt / "feature_extractor")], capture_output=True, text=True, check=True
    )
    expected = "SiglipImageProcessor" if importlib.util.find_spec("torchvision") else "SiglipImageProcessorPil"
    assert result.stdout.strip() == expected and "torchvision" not in result.stderr, result.stderr


def test_tokenizer_loads_as_gemma_and_adds_only_bos(ckpt, encoder):
    from transformers import GemmaTokenizer

    # model_index.json-style loading names the class directly; it must agree with AutoTokenizer.
    gemma = GemmaTokenizer.from_pretrained(ckpt / "tokenizer")
    ids = gemma(PROMPTS[1], padding=False)["input_ids"]
    assert ids == encoder.tokenizer(PROMPTS[1], padding=False)["input_ids"]
    assert ids[0] == 2 and 1 not in ids and 0 not in ids and gemma.padding_side == "right"


def test_outputs_are_ordinary_tensors(encoder):
    embeds, mask = encoder.encode(PROMPTS)
    embeds[~mask] = 0  # callers may zero pads in place; inference-mode tensors would refuse this
    assert not embeds.requires_grad


def test_short_prompts_do_not_warn(encoder, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.encode(PROMPTS)
    assert [r for r in caplog.records if r.name.startswith("motif_lite")] == []


def test_image_embeds_match_reference(ckpt, encoder):
    pipe = _reference_pipeline(ckpt, image2video=True)
    gen = torch.Generator().manual_seed(0)
    # A first frame as the pipeline prepares it for the VAE: [B, 3, H, W] in [-1, 1], slightly out of range
    # so the clamp matters.
    frames = torch.rand(2, 3, 40, 56, generator=gen) * 2.2 - 1.1
    with torch.no_grad():
        ref = pipe._get_image_embeds(
            image_encoder=pipe.text_encoder.vision_tower,
            feature_extractor=pipe.feature_extractor,
            image=((frames + 1) / 2).clamp(0, 1),
            device=torch.device("cpu"),
        )
    embeds = encoder.encode_image(frames)
    assert embeds.shape == (2, TINY_IMAGE_TOKENS, TINY_VISION_HIDDEN)
    torch.testing.assert_close(embeds, ref, rtol=1e-5, atol=1e-5)


def test_bf16_image_embeds_equal_reference(ckpt):
    # The pipeline hands over the first frame in the run dtype; the reference computes (x + 1) / 2 and the clamp
    # in that dtype (bf16 rounds `x + 1`) and only then goes to float, so SigLIP must see exactly those pixels.
    pipe = _reference_pipeline(ckpt, image2video=True)
    encoder = load_text_encoder(ckpt, dtype=torch.bfloat16, device="cpu")
    gen = torch.Generator().manual_seed(0)
    frames = (torch.rand(2, 3, 40, 56, generator=gen) * 2.2 - 1.1).to(torch.bfloat16)
    with torch.no_grad():
        ref = pipe._get_image_embeds(
            image_encoder=encoder.model.vision_tower,
            feature_extractor=pipe.feature_extractor,
            image=((frames + 1) / 2).clamp(0, 1),
            device=torch.device("cpu"),
        )
    assert torch.equal(encoder.encode_image(frames), ref)


def test_to_and_offload_move_weights(ckpt):
    fresh = load_text_encoder(ckpt, dtype=torch.float32)
    assert fresh.offload() is fresh and fresh.device.type == "cpu"
    assert fresh.to("meta") is fresh and fresh.device.type == "meta"  # every weight moved, none left behind
    assert all(p.device.type == "meta" for p in fresh.model.parameters())


def test_bad_inputs_raise_config_errors(encoder):
    with pytest.raises(ConfigError, match="non-empty list"):
        encoder.encode([])
    with pytest.raises(ConfigError, match="max_length"):
        encoder.encode(["x"], max_length=0)
    with pytest.raises(ConfigError, match=r"\[B, 3, H, W\]"):
        encoder.encode_image(torch.zeros(3, 8, 8))


@pytest.mark.parametrize(
    "remove", ["text_encoder/config.json", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"]
)
def test_missing_file_is_named(ckpt, tmp_path, remove):
    broken = tmp_path / "ckpt"
    shutil.copytree(ckpt, broken)
    (broken / remove).unlink()
    with pytest.raises(CheckpointError, match=remove):
        load_text_encoder(broken, dtype=torch.float32)


def test_missing_weights_and_foreign_config(ckpt, tmp_path):
    broken = tmp_path / "ckpt"
    shutil.copytree(ckpt, broken)
    (broken / "text_encoder/model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="safetensors"):
        load_text_encoder(broken)
    shutil.copy(ckpt / "text_encoder/model.safetensors", broken / "text_encoder")
    config = broken / "text_encoder/config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "t5"}))
    with pytest.raises(ConfigError, match="has model_type 't5', expected 't5gemma2_encoder'"):
        load_text_encoder(broken)
    config.write_text("[1]")  # JSON, but no object: said in words, not an AttributeError
    with pytest.raises(ConfigError, match=r"config\.json: the text encoder config is a list, not a JSON object"):
        load_text_encoder(broken)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_text_encoder(tmp_path / "nope")


def test_a_cached_snapshot_with_the_tokenizer_alone_is_not_taken_for_the_text_encoder(ckpt, no_network):
    # `tokenizer_root` (prompts measured before the weights download) leaves a snapshot holding only tokenizer/:
    # a repo id was then read from it as is, and refused for its missing text_encoder/config.json, instead of the
    # text encoder being downloaded (offline: named as missing, with the command that fetches it).
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.io.missing_report import MissingFilesError

    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    snapshot = repo / "snapshots" / "abc"
    shutil.copytree(ckpt / "tokenizer", snapshot / "tokenizer")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    with pytest.raises(MissingFilesError) as error:
        load_text_encoder(MOTIF_REPO, dtype=torch.float32)
    assert f"{MOTIF_REPO}: text_encoder/*" in str(error.value) and "--include 'text_encoder/*'" in str(error.value)
    shutil.copytree(ckpt / "text_encoder", snapshot / "text_encoder")  # the whole text encoder cached: used
    assert load_text_encoder(MOTIF_REPO, dtype=torch.float32).encode(PROMPTS)[0].shape[0] == 2


def test_weights_under_other_names_are_refused_not_loaded_random(ckpt, tmp_path, caplog):
    """transformers fills what a file lacks with random values and goes on: most tensors missing is an error, a few
    a warning naming them; the intact file loads without a word."""
    import logging

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "ckpt"
    shutil.copytree(ckpt, broken)
    weights = broken / "text_encoder/model.safetensors"
    tensors = load_file(weights)
    save_file({f"encoder.{name}": t for name, t in tensors.items()}, weights)
    with pytest.raises(CheckpointError, match="not the T5Gemma2 encoder's weights") as error:
        load_text_encoder(broken, dtype=torch.float32)
    assert f"{len(tensors)} of the text encoder's {len(tensors)} tensors" in str(error.value)
    assert "it holds other names (e.g. encoder." in str(error.value)
    dropped = sorted(tensors)[0]
    save_file({name: t for name, t in tensors.items() if name != dropped}, weights)
    with caplog.at_level(logging.WARNING, "motif_lite"):
        load_text_encoder(broken, dtype=torch.float32)
    assert f"lacks 1 of its {len(tensors)} tensors (" in caplog.text and dropped.split(".")[-1] in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "motif_lite"):
        load_text_encoder(ckpt, dtype=torch.float32)
    assert "lacks" not in caplog.text


def test_the_image_processor_is_loaded_once_and_is_the_one_encode_image_uses(ckpt):
    from transformers import SiglipImageProcessor

    encoder = load_text_encoder(ckpt, dtype=torch.float32, device="cpu")
    processor = encoder.loaded_image_processor()
    assert processor is encoder.loaded_image_processor()
    # A change to it (verify's image_mean_shift) reaches encode_image: it equals the reference's preprocessing at
    # the same changed mean.
    processor.image_mean = [m + 0.5 for m in processor.image_mean]
    shifted = SiglipImageProcessor.from_pretrained(ckpt / "feature_extractor", image_mean=processor.image_mean)
    frames = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1)) * 2 - 1
    pixels = shifted.preprocess(images=((frames + 1) / 2), do_rescale=False, return_tensors="pt")["pixel_values"]
    expected = encoder.model.vision_tower(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(encoder.encode_image(frames), expected)
    with pytest.raises(CheckpointError, match="feature_extractor"):
        TextEncoder(encoder.model, encoder.tokenizer).loaded_image_processor()
