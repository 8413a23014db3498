"""A tokenizer a caller loaded from the checkpoint's tokenizer folder, handed to `load_pipeline(prompt_tokenizer=)`
or `load_text_encoder(tokenizer=)`, was used as given even when loaded with other settings than the folder's
(`AutoTokenizer.from_pretrained(folder, truncation_side="left")`): prompts were tokenized unlike the reference."""

from __future__ import annotations

import json
import shutil

import pytest
from tiny_text import make_tiny_text_encoder
from transformers import AutoTokenizer

from motif_lite import load_pipeline
from motif_lite.encoders.text import load_text_encoder, load_tokenizer
from motif_lite.encoders.tokenizer_config import check_tokenizer_settings
from motif_lite.errors import ConfigError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_text")
    make_tiny_text_encoder(root)
    return root


OTHER_SETTINGS = [
    {"truncation_side": "left"},
    {"padding_side": "left"},
    {"model_max_length": 77},
    {"add_eos_token": True},  # <eos> after every prompt, and no <bos> before it
    {"pad_token": "<eos>"},
]


@pytest.mark.parametrize("setting", OTHER_SETTINGS, ids=lambda setting: next(iter(setting)))
def test_a_tokenizer_loaded_with_other_settings_is_refused_naming_the_setting(ckpt, setting):
    [(key, value)] = setting.items()
    tokenizer = AutoTokenizer.from_pretrained(ckpt / "tokenizer", **setting)
    with pytest.raises(ConfigError, match=rf"^tokenizer has {key}={value!r} where the checkpoint's tokenizer") as error:
        load_text_encoder(ckpt, tokenizer=tokenizer)
    assert "Pass motif_lite.encoders.text.load_tokenizer(root)" in str(error.value)
    assert f"without {key}=" in str(error.value) and "\n" not in str(error.value)


def test_load_pipeline_refuses_it_before_it_looks_for_the_checkpoint(ckpt, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(ckpt / "tokenizer", truncation_side="left")
    absent = tmp_path / "no-checkpoint"  # a checkpoint error would mean the tokenizer was not checked first
    with pytest.raises(ConfigError, match=r"^prompt_tokenizer has truncation_side='left' where .* has 'right'"):
        load_pipeline(absent, dtype="fp32", device="cpu", prompt_tokenizer=tokenizer)


def test_a_setting_changed_after_loading_is_refused(ckpt):
    tokenizer = load_tokenizer(ckpt)
    tokenizer.truncation_side = "left"
    with pytest.raises(ConfigError, match="truncation_side='left'"):
        check_tokenizer_settings(tokenizer, ckpt / "tokenizer", "tokenizer")


def test_the_folders_own_settings_are_taken(ckpt, tmp_path):
    # load_tokenizer's, a plain load of the folder, and of a folder whose files cut prompts on the left: the config
    # says so in one copy, tokenizer.json's truncation section in the other (its config names no side).
    check_tokenizer_settings(load_tokenizer(ckpt), ckpt / "tokenizer", "tokenizer")
    check_tokenizer_settings(AutoTokenizer.from_pretrained(ckpt / "tokenizer"), ckpt / "tokenizer", "tokenizer")
    by_config, by_file = tmp_path / "by_config", tmp_path / "by_file"
    for copy in (by_config, by_file):
        shutil.copytree(ckpt / "tokenizer", copy)
    config = json.loads((by_config / "tokenizer_config.json").read_text())
    (by_config / "tokenizer_config.json").write_text(json.dumps({**config, "truncation_side": "left"}))
    tokenizer_json = json.loads((by_file / "tokenizer.json").read_text())
    tokenizer_json["truncation"] = {"direction": "Left", "max_length": 512, "strategy": "LongestFirst", "stride": 0}
    (by_file / "tokenizer.json").write_text(json.dumps(tokenizer_json, indent=2))
    for folder in (by_config, by_file):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert tokenizer.truncation_side == "left"
        check_tokenizer_settings(tokenizer, folder, "tokenizer")
        with pytest.raises(ConfigError, match="has truncation_side='right' where .* has 'left'"):
            check_tokenizer_settings(AutoTokenizer.from_pretrained(folder, truncation_side="right"), folder, "x")


def test_add_bos_or_eos_token_given_is_judged_by_the_tokens_around_a_prompt(ckpt, tmp_path):
    # transformers drops the config's add_bos_token / add_eos_token where tokenizer.json is there and, given either,
    # rebuilds the tokens around a prompt from both (the other one False): the values given were compared with the
    # config's, so a tokenizer encoding as the folder does was refused and one dropping <bos> was taken.
    folder = ckpt / "tokenizer"  # its config names neither, as transformers 5 saves it
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert "add_bos_token" not in config and "add_eos_token" not in config
    same = AutoTokenizer.from_pretrained(folder, add_bos_token=True)
    assert same("a fox")["input_ids"] == load_tokenizer(ckpt)("a fox")["input_ids"]
    check_tokenizer_settings(same, folder, "tokenizer")
    # Gemma's own config values: add_eos_token=False, the config's value, alone drops the <bos> before every prompt.
    gemma = tmp_path / "gemma"
    shutil.copytree(folder, gemma)
    (gemma / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True, "add_eos_token": False}))
    no_bos = AutoTokenizer.from_pretrained(gemma, add_eos_token=False)
    assert no_bos("a fox")["input_ids"] != AutoTokenizer.from_pretrained(gemma)("a fox")["input_ids"]
    with pytest.raises(
        ConfigError, match=r"^x has add_eos_token=False where .* encodes every prompt as <bos> <prompt>"
    ):
        check_tokenizer_settings(no_bos, gemma, "x")


def test_a_config_without_model_max_length_is_compared_with_transformers_no_limit(ckpt, tmp_path):
    # Where tokenizer_config.json names no model_max_length, transformers gives the tokenizer its "no limit"
    # (VERY_LARGE_INTEGER): a tokenizer loaded with model_max_length=77 cuts prompts the reference does not.
    folder = tmp_path / "no_limit"
    shutil.copytree(ckpt / "tokenizer", folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k != "model_max_length"})
    )
    check_tokenizer_settings(AutoTokenizer.from_pretrained(folder), folder, "tokenizer")
    with pytest.raises(ConfigError, match=r"^x has model_max_length=77 where the checkpoint's tokenizer .* has 1000"):
        check_tokenizer_settings(AutoTokenizer.from_pretrained(folder, model_max_length=77), folder, "x")


def test_a_side_the_start_of_tokenizer_json_does_not_say_is_not_compared(ckpt, tmp_path):
    # The sides are read from tokenizer.json's first bytes alone: one whose truncation and padding sections come after
    # its vocabulary (keys written in another order) leaves them unknown, not a refusal of the
    # folder's own tokenizer for a side "None".
    folder = tmp_path / "sections_last"
    shutil.copytree(ckpt / "tokenizer", folder)
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    sections = {key: tokenizer_json.pop(key) for key in ("truncation", "padding")}
    (folder / "tokenizer.json").write_text(json.dumps({**tokenizer_json, **sections}, indent=2))
    assert (folder / "tokenizer.json").read_text().index('"truncation"') > 4096
    check_tokenizer_settings(AutoTokenizer.from_pretrained(folder), folder, "tokenizer")
