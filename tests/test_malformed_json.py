"""Malformed JSON in any file a user or a download hands motif-lite (a checkpoint's configs, a safetensors index or
header, a GGUF's embedded config, a LoRA's adapter_config.json, a latents file's description, an output file's
settings comment): one line naming the file and what is wrong, never a traceback. Our own cache of attention
choices is rewritten with a warning instead. Each case runs the entry point a user runs where one reads the file
(`motif-lite run --dry-run`, `check`, `decode`, `run --settings-from`), else the loader the pipeline calls. CPU."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import struct
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf_helpers import write_test_gguf
from PIL.PngImagePlugin import PngInfo
from safetensors.torch import save_file

from motif_lite import cli, load_transformer
from motif_lite.encoders.text_gguf import CONFIG_KEY as TEXT_ENCODER_CONFIG_KEY
from motif_lite.encoders.text_gguf import read_text_encoder_gguf
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.io.latents import FORMAT_KEY, TENSOR_NAME
from motif_lite.json_values import read_json_object
from motif_lite.runtime.attention_choices import RememberedChoices
from motif_lite.runtime.cost import text_encoder_shape
from motif_lite.weights.gguf_loader import CONFIG_KEY
from motif_lite.weights.lora import read_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec

# Brackets nested past what Python's parser follows: a RecursionError (no ValueError) escaped every reader.
DEEP = "[" * 100_000
# An integer of over 4300 digits, which Python refuses to convert: a plain ValueError, no JSONDecodeError.
HUGE = '{"num_layers": 1' + "0" * 5000 + "}"

# What `read_json_object` says of each kind of damage, after "FILE: the WHAT ".
DAMAGE = {
    "not JSON": (b'{"a" 1}', "is not valid JSON (Expecting ':' delimiter at line 1, column 6)"),
    "not UTF-8": (b'{"a": "\xff"}', "is not valid JSON (not UTF-8 text: byte 7 is 0xff)"),
    "nested too deeply": (DEEP.encode(), "is not readable JSON (nested too deeply)"),
    "a huge number": (HUGE.encode(), "is not readable JSON (a number of thousands of digits)"),
    "a list": (b"[1]", "is a list, not a JSON object"),
    "a number": (b"3", "is a number, not a JSON object"),
    "null": (b"null", "is null, not a JSON object"),
}  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_json_object_file_that_holds_none_is_one_line_naming_it(tmp_path, damage):
    data, said = DAMAGE[damage]
    path = tmp_path / "scheduler_config.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        read_json_object(path, "scheduler config")
    assert str(caught.value) == f"{path}: the scheduler config {said}"


def test_a_missing_json_object_file_is_named_with_the_error_class_asked_for(tmp_path):
    with pytest.raises(CheckpointError, match=f"^VAE config not found: {tmp_path / 'config.json'}$"):
        read_json_object(tmp_path / "config.json", "VAE config", CheckpointError)


@pytest.fixture
def damaged(checkpoint, tmp_path) -> Path:
    """A copy of the tiny checkpoint, for a test to damage."""
    return Path(shutil.copytree(checkpoint, tmp_path / "ckpt"))


def user_error(capsys, code: int) -> str:
    """What the command said (stdout and stderr), asserting it failed as a user's mistake, without a traceback."""
    said = capsys.readouterr()
    text = said.out + said.err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in text, text  # `check` says problems with the same code
    return text


DRY_RUN = ["-p", "a fox", "-W", "64", "-H", "64", "--video-frames", "9", "--steps", "1", "--dry-run"]
CONFIGS = {
    "transformer/config.json": "transformer config",
    "vae/config.json": "VAE config",
    "text_encoder/config.json": "text encoder config",
    "model_index.json": "model index",
    "scheduler/scheduler_config.json": "scheduler config",
    "guider/guider_config.json": "guider config",
    "tokenizer/tokenizer_config.json": "tokenizer config",
    "feature_extractor/preprocessor_config.json": "image processor config",
}


@pytest.mark.parametrize("rel", CONFIGS)
def test_a_checkpoint_config_nested_too_deeply_stops_a_run_in_one_line(damaged, rel, capsys):
    (damaged / rel).write_text(DEEP)
    said = user_error(capsys, cli.main(["run", "-m", str(damaged), *DRY_RUN]))
    assert f"error: {damaged / rel}: the {CONFIGS[rel]} is not readable JSON (nested too deeply)" in said


def test_a_transformer_config_with_a_huge_number_stops_a_run_in_one_line(damaged, capsys):
    (damaged / "transformer/config.json").write_text(HUGE)
    said = user_error(capsys, cli.main(["run", "-m", str(damaged), *DRY_RUN]))
    assert f"{damaged}/transformer/config.json: the transformer config is not readable JSON (a number of" in said


def test_check_names_a_config_nested_too_deeply_as_one_problem(damaged, capsys):
    (damaged / "vae/config.json").write_text(DEEP)
    said = user_error(capsys, cli.main(["check", "-m", str(damaged)]))
    assert "problem  vae/config.json: not readable JSON (nested too deeply); fix: download it again" in said


INDEX = "diffusion_pytorch_model.safetensors.index.json"
INDEX_DAMAGE = {
    "no weight_map": ({}, "the safetensors index has no weight_map; it should map each tensor to its file"),
    "weight_map a list": ({"weight_map": []}, "the safetensors index's weight_map is [], not an object mapping"),
    "a file name that is a number": ({"weight_map": {"x": 3}}, "the safetensors index's weight_map gives 3 where"),
    "a blank file name": ({"weight_map": {"x": ""}}, "the safetensors index's weight_map gives '' where"),
    "the index a list": ([], "the safetensors index is a list, not a JSON object"),
    "nested too deeply": (None, "the safetensors index is not readable JSON (nested too deeply)"),
}


@pytest.mark.parametrize("damage", INDEX_DAMAGE)
def test_check_names_what_is_wrong_in_a_safetensors_index(damaged, damage, capsys):
    content, said = INDEX_DAMAGE[damage]
    (damaged / "transformer" / INDEX).write_text(DEEP if content is None else json.dumps(content))
    assert f"problem  transformer/: {INDEX}: {said}" in user_error(capsys, cli.main(["check", "-m", str(damaged)]))


def test_a_safetensors_header_nested_too_deeply_is_one_problem(damaged, capsys):
    header = DEEP.encode()
    (damaged / "vae/diffusion_pytorch_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    said = user_error(capsys, cli.main(["check", "-m", str(damaged)]))
    assert "safetensors: the safetensors header is not readable JSON (nested too deeply)" in said


@pytest.mark.parametrize(
    ("text_config", "said"),
    [(3, "text_config must be a JSON object, got 3"),
     ({"hidden_size": "x"}, "text_config.hidden_size must be an integer from 1 to 1,048,576, got 'x'"),
     (None, "the text encoder config is not readable JSON (nested too deeply)")],
    ids=["a number", "a size that is text", "nested too deeply"],
)  # fmt: skip
def test_the_cost_estimate_names_a_text_encoder_config_it_cannot_read(tmp_path, text_config, said):
    # The estimate reads the file itself (a run checks it first, the Python API's plan may not).
    path = tmp_path / "text_encoder" / "config.json"
    path.parent.mkdir()
    path.write_text(DEEP if text_config is None else json.dumps({"text_config": text_config}))
    with pytest.raises(ConfigError, match=f"^{path}: {said}$".replace("(", r"\(").replace(")", r"\)")):
        text_encoder_shape(tmp_path)


def _gguf_with_config(path: Path, arch: str, key: str, config: object) -> Path:
    tensors = {"x.weight": (np.ones((2, 32), np.float32), GGMLQuantizationType.F32, (2, 32))}
    return write_test_gguf(path, tensors, arch=arch, extra_metadata={key: config})


@pytest.mark.parametrize(
    ("config", "said"),
    [(DEEP, "is not readable JSON (nested too deeply)"), ("[1]", "is a list, not a JSON object"),
     (7, "is a number, not JSON text")],
    ids=["nested too deeply", "a list", "a number"],
)  # fmt: skip
def test_a_transformer_gguf_whose_embedded_config_is_no_object_is_named(tmp_path, config, said):
    path = _gguf_with_config(tmp_path / "t.gguf", "motif_video", CONFIG_KEY, config)
    with pytest.raises(CheckpointError) as caught:
        load_transformer(path)
    assert str(caught.value) == f"{path}: the transformer config in its metadata {CONFIG_KEY} {said}"


def test_a_text_encoder_gguf_whose_embedded_config_is_nested_too_deeply_is_named(tmp_path):
    path = _gguf_with_config(tmp_path / "te.gguf", "t5gemma2_encoder", TEXT_ENCODER_CONFIG_KEY, DEEP)
    with pytest.raises(ConfigError) as caught:
        read_text_encoder_gguf(path)
    expected = f"{path}: {TEXT_ENCODER_CONFIG_KEY}: the text encoder config is not readable JSON (nested too deeply)"
    assert str(caught.value) == expected


def test_a_lora_whose_adapter_config_is_nested_too_deeply_is_named(tmp_path):
    down, up = "transformer_blocks.0.attn.to_q.lora_A.weight", "transformer_blocks.0.attn.to_q.lora_B.weight"
    save_file({down: torch.ones(4, 64), up: torch.zeros(64, 4)}, str(tmp_path / "adapter_model.safetensors"))
    (tmp_path / "adapter_config.json").write_text(DEEP)
    with pytest.raises(LoRAError, match=r"adapter_config\.json is not readable JSON \(nested too deeply\)$"):
        read_loras([LoRASpec(tmp_path / "adapter_model.safetensors")], {"transformer_blocks.0.attn.to_q": (64, 64)})


def test_decode_names_a_latents_file_whose_description_is_nested_too_deeply(tmp_path, capsys):
    path = tmp_path / "fox.latents.safetensors"
    save_file({TENSOR_NAME: torch.zeros(1, 4, 1, 2, 2)}, str(path), metadata={FORMAT_KEY: DEEP})
    said = user_error(capsys, cli.main(["decode", str(path)]))
    assert f"error: {path} is not a latents file of motif-lite" in said
    assert "its description is not readable JSON (nested too deeply)" in said


def test_settings_from_an_image_whose_comment_is_nested_too_deeply_holds_no_settings(tmp_path, capsys):
    path = tmp_path / "fox.png"
    comment = PngInfo()
    comment.add_text("comment", DEEP)
    PIL.Image.new("RGB", (8, 8)).save(path, pnginfo=comment)
    said = user_error(capsys, cli.main(["run", "--settings-from", str(path)]))
    assert f"error: {path} holds no motif-lite settings" in said


@pytest.mark.parametrize("damage", ["not JSON", "not UTF-8", "nested too deeply", "a huge number", "a list"])
def test_a_damaged_cache_of_attention_choices_is_rewritten_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "attention_choices.json"
    path.write_bytes(DAMAGE[damage][0])
    choices = RememberedChoices("this machine", path)
    assert choices.get("shape") is None
    with caplog.at_level(logging.WARNING):
        choices.put("shape", "flash")
    assert "is no file of attention choices motif-lite can read" in caplog.text
    assert json.loads(path.read_text()) == {"this machine": {"shape": "flash"}}


@pytest.mark.parametrize("damage", ["not UTF-8", "nested too deeply", "a list"])
def test_the_quantizer_names_a_config_beside_the_weights_it_cannot_read(checkpoint, tmp_path, capsys, damage):
    from motif_lite.quantize.cli import main as quantize_main

    data, said = DAMAGE[damage]
    source = Path(shutil.copytree(checkpoint / "transformer", tmp_path / "transformer"))
    (source / "config.json").write_bytes(data)
    assert quantize_main([str(source), "-o", str(tmp_path / "t.gguf"), "--quiet"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"error: {source / 'config.json'}: the config {said}" in err and "Traceback" not in err


def test_the_quantizer_names_a_gguf_source_whose_embedded_config_is_nested_too_deeply(tmp_path, capsys):
    from motif_lite.quantize.cli import main as quantize_main

    source = _gguf_with_config(tmp_path / "t.gguf", "motif_video", CONFIG_KEY, DEEP)
    assert quantize_main([str(source), "-o", str(tmp_path / "again.gguf"), "--quiet"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "the transformer config that comes with the weights is not readable JSON (nested too deeply)" in err


@pytest.mark.parametrize("damage", ["a list", "a number"])
def test_a_tokenizer_file_that_holds_no_object_stops_a_run_in_one_line(damaged, tmp_path, capsys, damage):
    # transformers raised a TypeError or an AttributeError for these, which no reader caught.
    data, wrong = DAMAGE[damage]
    (damaged / "tokenizer/tokenizer.json").write_bytes(data)
    run = ["run", "-m", str(damaged), *DRY_RUN[:-1], "-o", str(tmp_path / "fox.mp4")]
    said = user_error(capsys, cli.main(run))
    assert f"error: {damaged / 'tokenizer/tokenizer.json'}: the tokenizer file {wrong}" in said


def test_a_job_row_whose_json_is_nested_too_deeply_is_named_as_damaged(tmp_path):
    from test_fuzz_server import data_folder

    from motif_lite.errors import MotifLiteError
    from motif_lite.server.jobs import JobStore

    ids = data_folder(tmp_path)
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET settings = ? WHERE id = ?", (DEEP, ids[1]))
    db.close()
    with pytest.raises(
        MotifLiteError, match=f"holds 1 job this motif-lite cannot read \\({ids[1]}: settings is not JSON"
    ):
        JobStore(tmp_path)
