"""Loading a pipeline reads each component's config once: `locate_sources` reads them (`CheckpointConfigs.read`)
and the loaders take what it read. The VAE's and the text encoder's config.json were read again as their weights
loaded: a file edited in between would have given the plan one config and the model another."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("diffusers")


@pytest.fixture
def json_reads(monkeypatch) -> Counter[str]:
    """How many times each .json file is read whole (`read_json_object` reads a file with `Path.read_bytes`, the
    quantizer's copy of a config to embed with `Path.read_text`; the check for Git LFS pointers, which opens each
    file for its first bytes, is no read of a config)."""
    reads: Counter[str] = Counter()

    def counting(read):
        def counted(path: Path, *args, **kwargs):
            if path.name.endswith(".json"):
                reads[str(path)] += 1
            return read(path, *args, **kwargs)

        return counted

    monkeypatch.setattr(Path, "read_bytes", counting(Path.read_bytes))
    monkeypatch.setattr(Path, "read_text", counting(Path.read_text))
    return reads


# --text-encoder-quantize read the text encoder's config twice more: as its weights were quantized, and as the
# packed tensors were checked against it.
@pytest.mark.parametrize("text_encoder_quantize", [None, "Q8_0"])
def test_loading_reads_the_vae_and_text_encoder_configs_once(shared_checkpoint, json_reads, text_encoder_quantize):
    from motif_lite import load_pipeline

    root = shared_checkpoint[0]
    pipe = load_pipeline(root, device="cpu", dtype="fp32", text_encoder_quantize=text_encoder_quantize)
    assert pipe.vae is not None and pipe.text_encoder is not None
    configs = [str(root / "vae" / "config.json"), str(root / "text_encoder" / "config.json")]
    assert {path: json_reads[path] for path in configs} == dict.fromkeys(configs, 1)


def test_loading_reads_the_transformer_config_once(shared_checkpoint, json_reads):
    """`locate_sources` reads transformer/config.json and checks every tensor against it; the loader read it again
    to build the model."""
    from motif_lite import load_pipeline

    root = shared_checkpoint[0]
    pipe = load_pipeline(root, device="cpu", dtype="fp32")
    assert pipe.transformer is not None
    assert json_reads[str(root / "transformer" / "config.json")] == 1


def test_check_reads_each_config_once(shared_checkpoint, json_reads):
    """`motif-lite check` read most configs two to four times: for its line on the file, again to parse it, and
    again for the memory plan (transformers' own reads of the tokenizer's files, with `open`, are not counted)."""
    from motif_lite.checkup import check_setup

    root = shared_checkpoint[0]
    report = check_setup(root)
    assert report.plan is not None and not report.problems, report.lines()
    configs = [str(path) for path in root.rglob("*.json")]
    assert len(configs) > 5
    assert {path: json_reads[path] for path in configs} == dict.fromkeys(configs, 1)


def test_a_run_loads_the_tokenizer_once(shared_checkpoint, tmp_path, monkeypatch):
    """A run measures its prompts with the tokenizer before the weights load (the official negative prompt is long
    enough to be measured in every guided run), and the text encoder loaded the same folder's tokenizer again."""
    from motif_lite import cli
    from motif_lite.encoders import text

    loads: list[Path] = []
    load_tokenizer = text.load_tokenizer

    def recorded(root: Path, *args, **kwargs):
        loads.append(root)
        return load_tokenizer(root, *args, **kwargs)

    monkeypatch.setattr(text, "load_tokenizer", recorded)
    root, output = shared_checkpoint[0], tmp_path / "fox.mp4"
    argv = ["run", "-m", str(root), "-p", "a red fox runs through the snow " * 10, "-o", str(output)]
    argv += ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2", "--dtype", "fp32", "--device", "cpu"]
    assert cli.main(argv) == 0 and output.is_file()
    assert len(loads) == 1, loads


def test_the_text_encoder_takes_only_its_own_folders_tokenizer(shared_checkpoint, tmp_path, monkeypatch):
    """A tokenizer loaded from another folder (a copy, which may differ) is not used in place of the checkpoint's."""
    import shutil

    from motif_lite.encoders import text

    root = shared_checkpoint[0]
    shutil.copytree(root / "tokenizer", tmp_path / "tokenizer")
    other, own = text.load_tokenizer(tmp_path), text.load_tokenizer(root)
    loads: list[Path] = []
    load_tokenizer = text.load_tokenizer
    monkeypatch.setattr(text, "load_tokenizer", lambda folder: loads.append(folder) or load_tokenizer(folder))
    assert text.load_text_encoder(root, tokenizer=own).tokenizer is own and loads == []
    assert text.load_text_encoder(root, tokenizer=other).tokenizer is not other and loads == [root]


def test_configs_a_caller_saw_absent_are_absent_though_there_now(shared_checkpoint):
    """`files_read`'s None (the file was absent when the caller looked) stands, as its values would: the check's
    lines and its memory plan describe the same checkpoint."""
    from motif_lite.checkpoint_configs import CheckpointConfigs

    root = shared_checkpoint[0]
    assert CheckpointConfigs.read(root).text_encoder_config is not None  # the files are there
    seen = {"scheduler/scheduler_config.json": None, "text_encoder/config.json": None}
    configs = CheckpointConfigs.read(root, files_read=seen)
    assert configs.scheduler is None and configs.text_encoder_config is None


def test_load_pipeline_checks_its_prompt_tokenizer_once(shared_checkpoint, monkeypatch):
    """A prompt_tokenizer given add_bos_token is checked by loading the folder's own tokenizer (seconds for the
    official one): `load_pipeline` checked it, then `load_text_encoder` checked the same tokenizer again."""
    from transformers import AutoTokenizer

    from motif_lite import load_pipeline

    root = shared_checkpoint[0]
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", add_bos_token=True)
    loads: list[Path] = []
    from_pretrained = AutoTokenizer.from_pretrained

    def counted(folder, *args, **kwargs):
        loads.append(Path(folder))
        return from_pretrained(folder, *args, **kwargs)

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", counted)
    pipe = load_pipeline(root, device="cpu", dtype="fp32", prompt_tokenizer=tokenizer)
    assert pipe.text_encoder.tokenizer is tokenizer
    assert loads == [root / "tokenizer"]
