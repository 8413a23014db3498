"""`motif-lite check`: a tiny checkpoint saved by diffusers (and a GGUF made from it by our quantizer) passes; each
kind of damage is one problem line naming the file and the fix, and nothing else turns into a problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import load_file, save_file

pytest.importorskip("diffusers")
from gguf_helpers import write_split_gguf, write_test_gguf  # noqa: E402
from help_text import examples, help_text  # noqa: E402

from motif_lite import __version__, cli  # noqa: E402
from motif_lite.checkpoint import locate_sources  # noqa: E402
from motif_lite.checkup import check_setup  # noqa: E402
from motif_lite.checkup.checkpoint import types_and_sizes  # noqa: E402
from motif_lite.errors import CheckpointError  # noqa: E402
from motif_lite.shell_syntax import posix_quoted  # noqa: E402
from motif_lite.units import file_size, memory_size  # noqa: E402

TRANSFORMER = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def tiny(shared_checkpoint_and_gguf) -> tuple[Path, Path]:
    return shared_checkpoint_and_gguf  # read only, as conftest's shared_checkpoint_and_gguf says


@pytest.fixture
def copy(tiny, tmp_path) -> Path:
    shutil.copytree(tiny[0], tmp_path / "ckpt")
    return tmp_path / "ckpt"


def problems(report) -> list[str]:
    return [finding.line() for finding in report.problems]


def test_good_checkpoint_and_gguf_pass(tiny, tmp_path, capsys):
    root, gguf = tiny
    report = check_setup(root)
    assert report.passed, problems(report)
    ok = {f.subject for f in report.findings if f.level == "ok"}
    for subject in ("text_encoder/model.safetensors", "vae/diffusion_pytorch_model.safetensors", TRANSFORMER):
        assert subject in ok
    assert {"transformer/config.json", "scheduler/scheduler_config.json", "guider/guider_config.json"} <= ok
    assert "feature_extractor/preprocessor_config.json" in ok  # image-to-video possible
    assert report.plan is not None and "memory plan" in ok

    # A GGUF in another folder replaces transformer/ (checked against the checkpoint's config instead).
    without = tmp_path / "no-transformer"
    shutil.copytree(root, without, ignore=shutil.ignore_patterns("transformer"))
    (without / "transformer").mkdir()
    shutil.copy(root / "transformer" / "config.json", without / "transformer" / "config.json")
    report = check_setup(without, gguf=gguf)
    assert report.passed, problems(report)
    gguf_lines = [f.message for f in report.findings if f.subject == str(gguf)]
    assert gguf_lines[0].startswith("complete GGUF") and "Q8_0 x" in gguf_lines[0]
    assert gguf_lines[1] == "names and shapes match transformer/config.json"

    assert cli.main(["check", "-m", str(root)]) == 0
    out = capsys.readouterr().out
    assert "check: 0 problem(s)" in out and "Memory plan for 1280x736x121" in out


def test_a_machine_without_gpu_or_ffmpeg_gives_warnings_not_problems(tiny, monkeypatch):
    import imageio_ffmpeg
    import torch

    def no_ffmpeg() -> str:
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    report = check_setup(tiny[0])
    assert report.passed
    warned = {f.subject: f.message for f in report.warnings}
    assert "CPU, which is for tests" in warned["GPU"] and "Triton" not in warned  # no GPU: Triton would change nothing
    triton = next(f for f in report.findings if f.subject == "Triton")
    assert triton.message == "not used without a CUDA GPU: the torch ops run (the same math)"  # no "use 'auto'"
    assert ".mp4, .mkv, .mov and .webm output are not possible" in warned["ffmpeg"]


@pytest.mark.parametrize("exe", ["/nonexistent/ffmpeg", "/bin/false"])
def test_an_ffmpeg_that_cannot_run_is_a_warning_not_ok(monkeypatch, exe):
    # `IMAGEIO_FFMPEG_EXE=/nonexistent/ffmpeg motif-lite check` said "ok ffmpeg: /nonexistent/ffmpeg (.mp4, .webm)".
    from motif_lite.checkup.environment import _check_ffmpeg
    from motif_lite.checkup.report import Checkup

    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", exe)
    report = Checkup()
    _check_ffmpeg(report)
    (finding,) = report.findings
    assert finding.level == "warning" and finding.subject == "ffmpeg"
    assert finding.message.startswith(".mp4, .mkv, .mov and .webm output are not possible: ffmpeg ")
    assert f"{exe} (IMAGEIO_FFMPEG_EXE)" in finding.message and "which need no ffmpeg" in finding.message


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])


def _reshape_first_matrix(path: Path) -> None:
    tensors = load_file(path)
    name = next(n for n, t in sorted(tensors.items()) if t.ndim == 2)
    tensors[name] = np.zeros((tensors[name].shape[0] + 1, tensors[name].shape[1]), dtype=tensors[name].dtype)
    save_file(tensors, path)


def _reshape_one_tensor(path: Path) -> None:
    tensors = load_file(path)
    tensors["proj_out.weight"] = np.zeros((8, 8), dtype=np.float32)
    save_file(tensors, path)


def _one_tensor_as_int32(path: Path) -> None:
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].astype(np.int32)
    save_file(tensors, path)


DAMAGE = {
    "missing file": (lambda r: (r / "vae/diffusion_pytorch_model.safetensors").unlink(), "vae/", "missing"),
    "truncated safetensors": (lambda r: _truncate(r / TRANSFORMER), TRANSFORMER, "truncated"),
    "wrong tensor shape": (lambda r: _reshape_one_tensor(r / TRANSFORMER), TRANSFORMER, "proj_out.weight: file [8, 8]"),
    # A run refuses it before loading (`check_floats`); check passed it, as names and shapes match.
    "integer tensor": (lambda r: _one_tensor_as_int32(r / TRANSFORMER), TRANSFORMER, "1 transformer tensor not stored"),
    "integer VAE tensor": (
        lambda r: _one_tensor_as_int32(r / "vae/diffusion_pytorch_model.safetensors"),
        "vae/diffusion_pytorch_model.safetensors",
        "1 VAE tensor not stored as floats",
    ),
    "corrupt config JSON": (
        lambda r: (r / "scheduler/scheduler_config.json").write_text('{"shift": 15.0,'),
        "scheduler/scheduler_config.json",
        "not valid JSON",
    ),
    "invalid dynamic shifting": (
        lambda r: (r / "scheduler/scheduler_config.json").write_text(
            json.dumps({"shift": 15.0, "use_dynamic_shifting": True, "time_shift_type": "cosine"})
        ),
        "scheduler/scheduler_config.json",
        "time_shift_type must be",
    ),
    "invalid config value": (
        lambda r: (r / "transformer/config.json").write_text(json.dumps({"qk_norm": "layer_norm"})),
        "transformer/config.json",
        "qk_norm 'layer_norm' is not supported",
    ),
    "foreign text encoder": (
        lambda r: (r / "text_encoder/config.json").write_text(json.dumps({"model_type": "t5"})),
        "text_encoder/config.json",
        "cannot be read as a T5Gemma2 encoder config",
    ),
    "unreadable index": (
        lambda r: (r / "vae/diffusion_pytorch_model.safetensors.index.json").write_text("{"),
        "vae/",
        "diffusion_pytorch_model.safetensors.index.json: the safetensors index is not valid JSON",
    ),
    "missing tokenizer": (lambda r: (r / "tokenizer/tokenizer.json").unlink(), "tokenizer/tokenizer.json", "missing"),
    # Loaded as a run loads it (encoders.text.load_tokenizer), said in the tokenizers library's words alone: the line
    # names the file, not the folder again.
    "not a tokenizer": (
        lambda r: (r / "tokenizer/tokenizer.json").write_text(json.dumps({"model": {"type": "Nope"}})),
        "tokenizer/tokenizer.json",
        "cannot be read as a tokenizer: data did not match any variant of untagged enum ModelUntagged",
    ),
    # Before: named as tokenizer.json's problem, in transformers' words ("'list' object has no attribute ...").
    "wrong tokenizer config value": (
        lambda r: (r / "tokenizer/tokenizer_config.json").write_text(json.dumps({"tokenizer_class": [1]})),
        "tokenizer/tokenizer_config.json",
        "tokenizer_class must be the name of a tokenizer class or null, got [1]",
    ),
    "wrong text encoder tensor shape": (
        lambda r: _reshape_first_matrix(r / "text_encoder/model.safetensors"),
        "text_encoder/model.safetensors",
        "1 tensor(s) do not match text_encoder/config.json",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_each_damage_is_one_problem_naming_the_file_and_the_fix(copy, damage):
    harm, subject, message = DAMAGE[damage]
    harm(copy)
    report = check_setup(copy)
    found = problems(report)
    assert len(found) == 1, found
    assert found[0].startswith(f"problem  {subject}") and message in found[0] and "; fix: " in found[0]
    assert report.plan is None  # no memory plan for a checkpoint a run cannot read


def test_a_tokenizer_without_the_official_bos_is_a_warning_naming_the_file_and_key(copy, caplog):
    """A null post_processor (valid: a run reads it so, as the reference does) is one warning of `check`'s, on its
    own line: before, it parsed and nothing said that no prompt would get its <bos>."""
    path = copy / "tokenizer/tokenizer.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "post_processor": None}))
    report = check_setup(copy)
    found = [f for f in report.findings if f.subject == "tokenizer/tokenizer.json"]
    assert [f.level for f in found] == ["ok", "warning"] and not problems(report)
    assert found[1].message.startswith("post_processor is null: every prompt is encoded as <prompt>, the official")
    assert not [r for r in caplog.records if "post_processor" in r.getMessage()]  # not said twice


def test_the_official_tokenizer_is_no_warning(checkpoint):
    found = [f for f in check_setup(checkpoint).findings if f.subject == "tokenizer/tokenizer.json"]
    assert [f.level for f in found] == ["ok"]


def test_check_keeps_the_configs_it_read_but_not_the_parsed_tokenizer_json(checkpoint, monkeypatch):
    """`check` parses tokenizer.json (one that is no JSON object is its problem) and loads the tokenizer from it, but
    keeps the parsed file nowhere: nothing takes it from `configs_read` (transformers reads the file itself), and
    the official file's ~33 MB stayed parsed there for the whole check."""
    from motif_lite import checkup

    checked = []
    check_checkpoint = checkup.check_checkpoint

    def recorded(report, files, **kwargs):
        checked.append(files)
        return check_checkpoint(report, files, **kwargs)

    monkeypatch.setattr(checkup, "check_checkpoint", recorded)
    report = check_setup(checkpoint)
    assert report.plan is not None and not problems(report)
    [files] = checked
    assert {"tokenizer/tokenizer_config.json", "transformer/config.json"} <= set(files.configs_read)
    assert "tokenizer/tokenizer.json" not in files.configs_read


def test_fixes_download_into_the_checked_folder(copy):
    (copy / "vae/diffusion_pytorch_model.safetensors").unlink()
    _truncate(copy / TRANSFORMER)
    fixes = [line.split("; fix: ")[1] for line in problems(check_setup(copy))]
    command = "hf download Motif-Technologies/Motif-Video-2B --include"
    assert fixes == [
        f"download it: {command} 'vae/*.safetensors*' --local-dir {copy}",
        f"download it again: {command} '{TRANSFORMER}' --local-dir {copy} --force-download",
    ]


def test_fixes_beside_your_weight_files_download_into_your_folder_not_the_links(copy, tmp_path):
    # A ComfyUI user's --diffusion-model next to a folder of configs: check runs on a folder of links in the cache,
    # and the missing VAE's fix gave `--local-dir ~/.cache/motif-lite/linked/<hash>` (rebuilt with each run).
    mine = tmp_path / "motifvideo_2b.safetensors"
    shutil.move(copy / TRANSFORMER, mine)
    (copy / "vae/diffusion_pytorch_model.safetensors").unlink()
    (found,) = problems(check_setup(copy, weights={"transformer": mine}))
    command = "hf download Motif-Technologies/Motif-Video-2B --include"
    said = f"; fix: download it: {command} 'vae/*.safetensors*' --local-dir {copy}; or give your own file: --vae FILE"
    assert found.endswith(said), found
    (copy / "vae/config.json").unlink()  # a config is no file of yours: only the download
    found = [line for line in problems(check_setup(copy, weights={"transformer": mine})) if "vae/config.json" in line]
    assert found and found[0].endswith(f"--local-dir {copy}"), found


def test_a_damaged_file_in_the_hub_cache_is_downloaded_again_with_force(tiny, no_network):
    # Without --force-download, `hf download` keeps the file the cache holds: the fix changed nothing.
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    shutil.copytree(tiny[0], repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    _truncate(repo / "snapshots" / ("0" * 40) / TRANSFORMER)
    (found,) = problems(check_setup("Motif-Technologies/Motif-Video-2B"))
    command = f"hf download Motif-Technologies/Motif-Video-2B --include '{TRANSFORMER}' --force-download"
    assert found.endswith(f"; fix: download it again: {command}"), found


@pytest.mark.parametrize("reshaped", [3, 4])
def test_mismatched_tensors_are_named_up_to_three(copy, reshaped):
    tensors = load_file(copy / TRANSFORMER)
    for name in sorted(n for n, t in tensors.items() if t.ndim == 2)[:reshaped]:
        tensors[name] = np.zeros((5, 7), dtype=np.float32)
    save_file(tensors, copy / TRANSFORMER)
    (found,) = problems(check_setup(copy))
    assert f"{reshaped} tensor(s) do not match" in found and found.count(": file [5, 7], config") == 3
    assert ("; and 1 more" in found) == (reshaped == 4) and "and 0 more" not in found


def _gguf_with(tmp_path: Path, root: Path, qtype: Q, arch: str = "motif_video") -> Path:
    """The tiny transformer as a GGUF whose linear weights are random blocks of `qtype`."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, array in load_file(root / TRANSFORMER).items():
        block, size = GGML_QUANT_SIZES[qtype]
        if array.ndim == 2 and array.shape[1] % block == 0:
            packed = rng.integers(0, 256, size=array.size // block * size, dtype=np.uint8).tobytes()
            tensors[name] = (packed, qtype, array.shape)
        else:
            tensors[name] = (array, Q.F32, array.shape)
    return write_test_gguf(tmp_path / f"{qtype.name}.gguf", tensors, arch=arch)


@pytest.mark.parametrize(
    ("metadata", "made"),
    [({"motif_lite.quantize.type": "Q8_0"}, " (Q8_0)"),  # ours, from before the version was recorded
     ({"general.file_type": 7}, " (Q8_0)"),  # llama.cpp's MOSTLY_Q8_0, as another tool writes it
     ({"motif_lite.quantize.version": 3}, ""),  # not a version string: not one to name
     ({"motif_lite.quantize.version": "1\nok       x: fine"}, ""),  # a line break would make a line of its own
     ({"motif_lite.quantize.version": "9" * 100_000}, ""),  # a hundred thousand characters in one line
     ({"motif_lite.quantize.version": "1), 0 tensors: (x"}, ""),  # text that rewrites the line after it
     ({"motif_lite.quantize.version": "0.2.0.dev1+g1a2b"}, " (made by motif-lite 0.2.0.dev1+g1a2b)"),  # a build's
     ({"motif_lite.quantize.type": "Q8_0\nok       x: fine"}, ""),  # the type, in the same line: checked as well
     ({"motif_lite.quantize.type": "Q8_0), 0 tensors: (x", "general.file_type": 7}, " (Q8_0)"),  # llama.cpp's
     ({}, "")],
)  # fmt: skip
def test_a_gguf_that_does_not_record_the_version_that_made_it_is_no_problem(tiny, tmp_path, metadata, made):
    from motif_lite.weights.gguf_file import read_gguf

    root = tiny[0]
    tensors = {name: (array, Q.F32, array.shape) for name, array in load_file(root / TRANSFORMER).items()}
    path = write_test_gguf(tmp_path / "older.gguf", tensors, extra_metadata=metadata)
    report = check_setup(root, gguf=path)
    assert report.passed, problems(report)
    line = next(f.message for f in report.findings if f.subject == str(path))
    tensors = read_gguf(path).tensors
    assert line == f"complete GGUF{made}, {len(tensors)} tensors: {types_and_sizes(tensors)}", line


def test_gguf_problems(tiny, tmp_path):
    root, gguf = tiny
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[:-5000])
    cases = {
        cut: "truncated",
        _llama_gguf(tmp_path): "architecture 'llama'",
        _gguf_with(tmp_path, root, Q.IQ2_XXS): "IQ2_XXS is not supported",
        tmp_path / "nowhere.gguf": "no such GGUF file",
    }
    for path, message in cases.items():
        found = problems(check_setup(root, gguf=path))
        assert len(found) == 1 and message in found[0] and "; fix: " in found[0], (path.name, found)


def test_a_variant_that_is_no_types_name_is_said_as_run_says_it(tiny, no_network):
    # check said "no such GGUF file; fix: pass the path of a .gguf file ..." where run names the closest variant.
    (found,) = problems(check_setup(tiny[0], gguf="Q4KM"))
    assert found.startswith(
        "problem  Q4KM: no such file, and no quantization type has that name; the closest is Q4_K_M;"
    )
    assert "fix: --gguf Q4_K_M; a variant of Motif-Technologies/Motif-Video-2B-GGUF is named by its type" in found


def test_a_variant_of_a_type_motif_lite_cannot_run_is_said_as_run_says_it(tiny, no_network):
    # check said "no such GGUF file; fix: pass the path of a .gguf file ..." for --gguf TQ1_0, which run refuses as
    # a type it cannot run, naming the variants it can run, the nearest first.
    from motif_lite.io.gguf_source import unrunnable_variant_problem
    from motif_lite.quantize.recipes import size_stand_in

    (found,) = problems(check_setup(tiny[0], gguf="tq1_0"))
    assert found.startswith(
        "problem  tq1_0: motif-lite cannot run a file of GGUF type TQ1_0; fix: --gguf Q2_K is the nearest variant it "
        "runs; it runs "
    )
    listed = found.split("; it runs ", 1)[1].removesuffix(" (any letter case)").split(", ")
    assert "IQ4_XS" in listed and "Q4_K_M" in listed
    for variant in listed:  # each one a variant run takes and a dry run plans with
        assert unrunnable_variant_problem(variant) is None
        size_stand_in(variant)


def test_a_type_with_no_nearest_variant_names_the_setting_in_each_users_words(tiny, no_network):
    # F64: no variant of its bits to name first, so the fix names the setting itself: run's flag to check's user
    # (as run says it), both spellings to a Python caller.
    from motif_lite.io.gguf_source import unrunnable_variant_problem

    (found,) = problems(check_setup(tiny[0], gguf="F64"))
    assert found.startswith(
        "problem  F64: motif-lite cannot run a file of GGUF type F64; fix: give --gguf a variant it runs: F32, "
    )
    assert unrunnable_variant_problem("F64")[1].startswith("give --gguf (in Python gguf=) a variant it runs: F32, ")


def _llama_gguf(tmp_path: Path) -> Path:
    """A GGUF of an LLM, as llama.cpp names its tensors."""
    rows = np.zeros((2, 64), np.float32)
    tensors = {"token_embd.weight": (rows, Q.F32, rows.shape), "blk.0.attn_q.weight": (rows, Q.Q8_0, rows.shape)}
    return write_test_gguf(tmp_path / "llama-3-8b-Q8_0.gguf", tensors, arch="llama")


def test_another_models_gguf_is_kept_and_the_right_file_named(tiny, tmp_path):
    """Its fix must not make our file over it (`-o THAT_FILE --force` would destroy the user's LLM)."""
    root, llama = tiny[0], _llama_gguf(tmp_path)
    (transformer,) = problems(check_setup(root, gguf=llama))
    (text_encoder,) = problems(check_setup(root, text_encoder_gguf=llama))
    for found in (transformer, text_encoder):
        fix = found.split("; fix: ", 1)[1]
        assert fix.startswith("it is another model's file") and str(llama) not in fix and "--force" not in fix, found
    assert f"python -m motif_lite.quantize {root} -o {tmp_path / 'motif-video-2b-Q4_K_M.gguf'}" in transformer
    assert f"--component text_encoder -o {tmp_path / 'te-Q8_0.gguf'}" in text_encoder


def test_the_gguf_line_says_its_type_and_the_size_of_each_tensor_type(tiny, tmp_path):
    from motif_lite.weights.gguf_file import read_gguf

    root, gguf = tiny
    (line, _) = [f.message for f in check_setup(root, gguf=gguf).findings if f.subject == str(gguf)]
    ckpt = read_gguf(gguf)
    made = f"Q8_0, made by motif-lite {__version__}"  # the version that wrote it, for a report about the file
    assert line == f"complete GGUF ({made}), {len(ckpt.tensors)} tensors: {types_and_sizes(ckpt.tensors)}", line
    listed = types_and_sizes(ckpt.tensors).split(", ")
    assert len(listed) == len({t.qtype for t in ckpt.tensors.values()}) > 1
    shares = [sum(t.nbytes for t in ckpt.tensors.values() if t.qtype.name == item.split()[0]) for item in listed]
    assert shares == sorted(shares, reverse=True), line  # the largest share first
    for qtype in {t.qtype for t in ckpt.tensors.values()}:  # each type: its count and its bytes, as a file's
        of_type = [t for t in ckpt.tensors.values() if t.qtype == qtype]
        assert f"{qtype.name} x{len(of_type)} {file_size(sum(t.nbytes for t in of_type))}" in listed, line


def test_the_gguf_lines_read_each_file_once(tiny, tmp_path, monkeypatch):
    # The line of a GGUF read the file's metadata again for the quantizer's version, which the file's read had
    # already: counted as opens of the file, the check's against a read of the file alone.
    import builtins

    from motif_lite.checkup import Checkup
    from motif_lite.checkup.checkpoint import check_gguf, check_text_encoder_gguf
    from motif_lite.encoders.text_gguf import read_text_encoder_gguf
    from motif_lite.quantize.cli import main as quantize_main
    from motif_lite.weights.gguf_file import read_gguf

    root, gguf = tiny
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    opens, real_open = [], builtins.open
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: opens.append(str(file)) or real_open(file, *a, **k))

    def opens_of(path: Path, read) -> int:
        opens.clear()
        read()
        return opens.count(str(path))

    report = Checkup()
    checked = opens_of(gguf, lambda: check_gguf(report, gguf, root, str(root)))
    assert checked == opens_of(gguf, lambda: read_gguf(gguf)) > 0
    checked = opens_of(te, lambda: check_text_encoder_gguf(report, str(te), root, str(root)))
    config = root / "text_encoder" / "config.json"
    assert checked == opens_of(te, lambda: read_text_encoder_gguf(te, config)) > 0
    assert not report.problems and sum(f"made by motif-lite {__version__}" in f.message for f in report.findings) == 2


def test_a_text_encoder_ggufs_recorded_recipe_is_named_only_when_shaped_like_one(tiny, tmp_path):
    # The transformer's line named the recorded version only when shaped like one, but printed the recorded recipe,
    # in the same parentheses, as any text: a line break in it forged a line of check's report (here an "ok" one).
    from motif_lite.checkup import Checkup
    from motif_lite.checkup.checkpoint import check_text_encoder_gguf
    from motif_lite.quantize.cli import main as quantize_main
    from motif_lite.weights.gguf_file import QUANTIZE_TYPE_KEY, TEXT_ENCODER_ARCH, read_gguf

    root = tiny[0]
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    recipe = read_gguf(te, expected_arch=TEXT_ENCODER_ARCH).metadata[QUANTIZE_TYPE_KEY]
    key = QUANTIZE_TYPE_KEY.encode()
    data = te.read_bytes()  # the value, after the key, its type (u32) and its length (u64): as long, other text
    at = data.index(key + (8).to_bytes(4, "little") + len(recipe).to_bytes(8, "little")) + len(key) + 12
    forged = ("\nok       forged: fine" + " " * len(recipe))[: len(recipe)]
    te.write_bytes(data[:at] + forged.encode() + data[at + len(recipe) :])
    report = Checkup()
    check_text_encoder_gguf(report, str(te), root, str(root))
    (line,) = [f.message for f in report.findings if f.subject == str(te)]
    assert line.startswith(f"text encoder GGUF (made by motif-lite {__version__}), "), line
    assert "\n" not in line


def test_a_gguf_checked_alone_is_checked_against_the_config_it_embeds(tiny, tmp_path):
    """`motif-lite check --gguf FILE` without the checkpoint: the file's own line still says all about it."""
    gguf = tiny[1]
    report = check_setup(tmp_path / "no-checkpoint", gguf=gguf)
    lines = [f.message for f in report.findings if f.subject == str(gguf)]
    assert lines[1] == f"names and shapes match the config embedded in {gguf.name} (motif_video.config_json)"


def test_a_transformer_gguf_another_tool_labelled_is_checked_by_its_tensors(tiny, tmp_path):
    """stable-diffusion.cpp's convert writes no general.architecture, ComfyUI-style converters their own name."""
    root = tiny[0]
    for arch, said in (("motif", "general.architecture 'motif'"), (None, "no general.architecture")):
        gguf = _gguf_with(tmp_path, root, Q.Q8_0, arch=arch)
        report = check_setup(root, gguf=gguf)
        assert report.passed, problems(report)
        (line, matched) = [f.message for f in report.findings if f.subject == str(gguf)]
        assert line.endswith(f"; {said}, read as motif_video from its tensor names"), line
        assert matched == "names and shapes match transformer/config.json"


def test_a_safetensors_file_given_as_a_gguf_is_told_its_flag(tiny):
    """ComfyUI's and sd.cpp's model folders hold both kinds: the fix is the flag that takes a safetensors file, or
    the quantizer, not downloading a GGUF again."""
    root = tiny[0]
    transformer, text_encoder = root / TRANSFORMER, root / "text_encoder" / "model.safetensors"
    (found,) = problems(check_setup(root, gguf=transformer))
    assert f"fix: it is a safetensors file: pass it as --diffusion-model {transformer}, or quantize it: " in found
    assert "hf download" not in found, found
    (found,) = problems(check_setup(root, text_encoder_gguf=text_encoder))
    assert f"fix: it is a safetensors file: pass it as --text-encoder {text_encoder}, or quantize it: " in found
    assert "--component text_encoder" in found, found
    vae = root / "vae" / "diffusion_pytorch_model.safetensors"  # another component's file: the flag that takes it
    for given in (dict(gguf=vae), dict(text_encoder_gguf=vae)):
        (found,) = problems(check_setup(root, **given))
        assert "fix: it is a safetensors file that holds the VAE's tensors (pass it as --vae)" in found, found


def test_a_safetensors_file_given_as_a_text_encoder_gguf_from_home_is_told_its_flag(tiny, tmp_path, monkeypatch):
    """`~/te.safetensors` (from Python, or a quoted flag) is the file in your home: it was looked for as given, so
    the fix was to make a GGUF, and the problem repeated the expanded path."""
    monkeypatch.setenv("HOME", str(tmp_path))
    root = tiny[0]
    shutil.copy(root / "text_encoder" / "model.safetensors", tmp_path / "te.safetensors")
    (found,) = problems(check_setup(root, text_encoder_gguf="~/te.safetensors"))
    assert f"fix: it is a safetensors file: pass it as --text-encoder {tmp_path / 'te.safetensors'}, " in found, found
    assert str(tmp_path) not in found.split("; fix: ")[0], found


def test_the_fix_for_a_safetensors_file_quotes_its_path_with_a_space(tiny, tmp_path):
    # Both commands are pasted: unquoted, "my models" became two arguments.
    spaced = tmp_path / "my models" / "diffusion model.safetensors"
    spaced.parent.mkdir()
    shutil.copy(tiny[0] / TRANSFORMER, spaced)
    (found,) = problems(check_setup(tiny[0], gguf=spaced))
    assert (
        f"pass it as --diffusion-model '{spaced}', or quantize it: python -m motif_lite.quantize '{spaced}' -o "
        "'diffusion model-Q4_K_M.gguf'" in found
    ), found


def test_a_file_that_is_no_gguf_is_not_made_again_under_its_own_name(tiny, tmp_path):
    """A video (or any file not named .gguf) given to --gguf or --text-encoder-gguf: the fix is to pass the .gguf
    file; the quantizer's command to make it again would name the video as its output, which the quantizer refuses
    (and which is the user's file)."""
    root = tiny[0]
    video = tmp_path / "fox.mp4"
    video.write_bytes(b"\x00\x00\x00 ftypisom" + bytes(64))
    (found,) = problems(check_setup(root, gguf=video))
    assert found.endswith("fix: pass the transformer's .gguf file (or a variant such as Q4_K_M)"), found
    for given in (video, tmp_path / "missing.mp4"):
        (found,) = problems(check_setup(root, text_encoder_gguf=given))
        command = f"python -m motif_lite.quantize {root} --component text_encoder -o te-Q8_0.gguf --type Q8_0"
        assert found.endswith(f"fix: pass the text encoder's .gguf file, or make one: {command}"), found


def test_a_text_encoder_gguf_problem_names_the_file_once(tiny, tmp_path):
    from motif_lite.quantize.cli import main as quantize_main

    root = tiny[0]
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(te.read_bytes()[:-5000])
    (found,) = problems(check_setup(root, text_encoder_gguf=cut))
    assert found.count(str(cut)) == 2 and "truncated" in found, found  # once named, once in the fix
    remake = f"python -m motif_lite.quantize {root} --component text_encoder -o {cut} --type Q8_0 --force"
    assert found.endswith(f"; fix: make it again: {remake}"), found  # -m as given, the file, its type


def test_a_missing_text_encoder_gguf_is_made_from_the_checkpoint_given(tiny, tmp_path):
    """The fix names -m and the file asked for, not placeholders; run's error gives the same command."""
    root, missing = tiny[0], tmp_path / "te-Q8_0.gguf"
    (found,) = problems(check_setup(root, text_encoder_gguf=missing))
    command = f"python -m motif_lite.quantize {root} --component text_encoder -o {missing} --type Q8_0"
    assert found.endswith(f"no such file; fix: make one: {command}"), found
    with pytest.raises(CheckpointError) as raised:
        locate_sources(root, text_encoder_gguf=missing, require_weights=False, download=False)
    assert str(raised.value).endswith(f"({'make one: ' + command})"), raised.value


def test_gguf_without_any_config_warns_that_rope_theta_is_assumed(tiny, tmp_path):
    gguf = _gguf_with(tmp_path, tiny[0], Q.Q8_0)  # no embedded config, no config.json beside it
    report = check_setup(tmp_path / "no-checkpoint", gguf=gguf)
    warned = [f.message for f in report.warnings if f.subject == str(gguf)]
    assert warned == ["no transformer config at hand: rope_theta 10000 is assumed"], report.lines()
    assert not [f for f in report.problems if f.subject == str(gguf)]


def test_a_gguf_folder_must_hold_one_file(tiny, tmp_path):
    root, gguf = tiny
    folder = tmp_path / "ggufs"
    folder.mkdir()
    shutil.copy(gguf, folder / "a.gguf")
    assert check_setup(root, gguf=folder).passed
    shutil.copy(gguf, folder / "b.gguf")
    (found,) = problems(check_setup(root, gguf=folder))
    assert f"{folder}: holds 2 .gguf files; fix: pass the path of one .gguf file" in found


def test_a_checkpoint_folder_given_to_gguf_is_told_it_goes_to_m(tiny):
    # It was "holds 0 .gguf files; fix: pass the path of one .gguf file", which left -m unsaid
    root = tiny[0]
    found = problems(check_setup(root, gguf=str(root)))
    assert found == [f"problem  {root}: is a checkpoint folder (it holds model_index.json), not a GGUF file; fix: it "
                     f"goes to -m: -m {root}; --gguf takes a .gguf file, or a variant such as Q4_K_M"]  # fmt: skip


def test_settings_a_run_replaces_are_warnings(copy):
    # diffusers' default shift 1.0 and a disabled guider: a run still works (with shift 15 / no guidance), so
    # check warns about what the run does instead.
    scheduler, guider = copy / "scheduler/scheduler_config.json", copy / "guider/guider_config.json"
    scheduler.write_text(json.dumps({**json.loads(scheduler.read_text()), "shift": 1.0}))
    guider.write_text(json.dumps({**json.loads(guider.read_text()), "enabled": False}))
    report = check_setup(copy)
    assert report.passed, problems(report)
    warned = {f.subject: f.message for f in report.warnings}
    assert "runs use 15 (text-to-video) / 8 (image-to-video)" in warned["scheduler/scheduler_config.json"]
    assert "guidance disabled (enabled: false)" in warned["guider/guider_config.json"]


def test_dynamic_shifting_without_a_shift_is_not_warned_about(copy):
    # Under use_dynamic_shifting the run shifts by the video's size: a missing shift is no loss.
    scheduler = copy / "scheduler/scheduler_config.json"
    config = {k: v for k, v in json.loads(scheduler.read_text()).items() if k != "shift"}
    scheduler.write_text(json.dumps({**config, "use_dynamic_shifting": True}))
    report = check_setup(copy)
    assert report.passed, problems(report)
    assert "scheduler/scheduler_config.json" not in {f.subject for f in report.warnings}


def test_dpm_dynamic_shifting_is_read_as_a_run_reads_it(copy):
    # A DPMSolverMultistep config with dynamic shifting runs (exp(mu) as its flow shift); the default line's mu at
    # the default size, which diffusers' DPMSolverMultistep cannot step, and a linear time shift, on which it fails,
    # are refused by the run before loading, and so by check.
    index = copy / "model_index.json"
    index.write_text(
        json.dumps({**json.loads(index.read_text()), "scheduler": ["diffusers", "DPMSolverMultistepScheduler"]})
    )
    scheduler = copy / "scheduler/scheduler_config.json"
    dpm = {"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver++", "use_flow_sigmas": True,
           "prediction_type": "flow_prediction", "use_dynamic_shifting": True}  # fmt: skip
    scheduler.write_text(json.dumps({**dpm, "max_image_seq_len": 120000}))  # mu 1.1 at the default size
    report = check_setup(copy)
    assert report.passed, problems(report)
    assert "scheduler/scheduler_config.json" not in {f.subject for f in report.warnings}
    scheduler.write_text(json.dumps(dpm))
    found = problems(check_setup(copy))
    assert len(found) == 1 and "DPM++ schedule that starts at timestep 999 twice" in found[0], found
    scheduler.write_text(json.dumps({**dpm, "time_shift_type": "linear"}))
    found = problems(check_setup(copy))
    assert len(found) == 1 and found[0].startswith("problem  scheduler/scheduler_config.json"), found
    assert "shifts dynamically by exp(mu) only" in found[0], found


def test_gguf_against_another_config(tiny, copy):
    # The checkpoint's config (one more decoder block) decides; the GGUF's tensors do not fit it.
    config = json.loads((copy / "transformer/config.json").read_text())
    (copy / "transformer/config.json").write_text(json.dumps({**config, "num_single_layers": 4}))
    found = problems(check_setup(copy, gguf=tiny[1]))
    assert (
        len(found) == 1
        and "tensor(s) do not match transformer/config.json: missing single_transformer_blocks" in found[0]
    )


def test_optional_files_missing_are_warnings(copy):
    for folder in ("guider", "scheduler", "feature_extractor"):
        shutil.rmtree(copy / folder)
    report = check_setup(copy)
    assert report.passed
    warned = {f.subject: f.message for f in report.warnings}
    assert "official APG guidance" in warned["guider/guider_config.json"]
    assert "image-to-video (-i) is not possible" in warned["feature_extractor/preprocessor_config.json"]
    assert "flow shift defaults to 15" in warned["scheduler/scheduler_config.json"]


def test_a_tensor_a_run_refuses_is_a_problem_and_never_said_not_to_fit(copy, capsys):
    # An int32 tensor: names and shapes match, so check said "ok", then worded the planner's refusal of it as
    # "the default ... does not fit here" (a warning, exit 0), while `run` stops on it.
    _one_tensor_as_int32(copy / TRANSFORMER)
    report = check_setup(copy)
    assert not report.passed and [f.subject for f in report.problems] == [TRANSFORMER]
    assert not [f.line() for f in report.findings if "does not fit" in f.message]
    with pytest.raises(CheckpointError, match="not stored as floats"):
        locate_sources(copy)  # the run's own check, from the headers
    assert cli.main(["check", "-m", str(copy)]) == cli.EXIT_USER_ERROR


def test_only_a_memory_refusal_of_the_default_plan_is_said_not_to_fit(tiny, monkeypatch):
    # The planner's memory refusals have their own type; any other refusal of a default run is a problem.
    from motif_lite import memory_plan
    from motif_lite.errors import ConfigError, MemoryBudgetError
    from motif_lite.request import GenerationRequest

    with pytest.raises(MemoryBudgetError, match="needs at least"):  # the real planner, for a GPU of 10 MiB
        memory_plan.plan_generation(GenerationRequest("a fox"), tiny[0], device="cuda", vram_gib=0.01)
    for refusal, level in ((MemoryBudgetError("needs 9 GiB"), "warning"), (ConfigError("bad value"), "problem")):

        def refuse(*args, refusal=refusal, **kwargs):
            raise refusal

        monkeypatch.setattr(memory_plan, "plan_generation", refuse)
        found = [f for f in check_setup(tiny[0]).findings if f.subject == "memory plan"]
        assert [f.level for f in found] == [level]
        assert ("does not fit here" in found[0].message) == (level == "warning")


def test_a_transformer_that_takes_no_image_is_text_to_video_only(copy):
    # image_embed_dim: null (a text-to-video export, no image_embedder weights): a run refuses -i, so check must
    # not say "image-to-video possible" because the feature extractor is there.
    config_path = copy / "transformer/config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "image_embed_dim": None}))
    tensors = load_file(copy / TRANSFORMER)
    save_file({name: t for name, t in tensors.items() if not name.startswith("image_embedder.")}, copy / TRANSFORMER)
    report = check_setup(copy)
    assert report.passed, problems(report)
    rel = "feature_extractor/preprocessor_config.json"
    assert [f.level for f in report.findings if f.subject == rel] == ["warning"]
    assert "takes no image" in next(f.message for f in report.warnings if f.subject == rel)
    assert not [f for f in report.findings if "image-to-video possible" in f.message]


@pytest.mark.parametrize("broken", ["the GGUF", "transformer/config.json"])
def test_image_to_video_is_not_claimed_without_a_transformer_config(tiny, copy, tmp_path, broken):
    # A --gguf file whose config could not be read at all (cut in its header) still got "image-to-video possible"
    # because the feature extractor was there: with no transformer config known, whether it takes an image is not.
    gguf = None
    if broken == "the GGUF":
        gguf = tmp_path / "cut.gguf"
        gguf.write_bytes(tiny[1].read_bytes()[:300])
    else:
        (copy / broken).write_text("{not json")
    report = check_setup(copy, gguf=gguf)
    assert not report.passed  # the config's problem is said
    rel = "feature_extractor/preprocessor_config.json"
    (found,) = [f for f in report.findings if f.subject == rel]
    assert (found.level, found.message) == ("ok", "present; image-to-video unknown: no transformer config was read")
    assert not [f for f in report.findings if "image-to-video possible" in f.message]


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_an_unknown_config_key_is_a_warning_finding_of_its_file_and_a_run_says_it_once(copy, capsys, tmp_path):
    # A misspelt key (rope_dim for rope_axes_dim) is ignored and its setting keeps its default: check printed
    # Python's warning above the report, counted nothing, and a run printed it twice (its checks, then the load).
    config_path = copy / "transformer/config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "rope_dim": [8, 4, 4]}))
    assert cli.main(["check", "-m", str(copy)]) == 0
    captured = capsys.readouterr()
    assert "rope_dim" not in captured.err, captured.err
    said = "warning  transformer/config.json: ignoring unknown transformer config keys ['rope_dim']"
    lines = captured.out.splitlines()
    assert lines.count(said) == 1  # counted in the summary with the others
    assert f"0 problem(s), {sum(line.startswith('warning ') for line in lines)} warning(s)" in captured.out
    run = ["run", "-m", str(copy), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1"]
    assert cli.main([*run, "--device", "cpu", "-o", str(tmp_path / "fox.mp4")]) == 0
    assert capsys.readouterr().err.count("ignoring unknown transformer config keys ['rope_dim']") == 1


def test_nothing_on_disk_exits_2_with_download_commands(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code = cli.main(["check", "-m", "Motif-Technologies/Motif-Video-2B", "--gguf", "Q4_K_M"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_USER_ERROR and "check: 2 problem(s)" in out
    # The downloads a run suggests (`run` and `check` share the builder): the checkpoint without the transformer's
    # weights, which the GGUF replaces, and the GGUF into a folder of its own.
    include = "--include 'text_encoder/*' --include 'tokenizer/*' --include 'vae/*' --include transformer/config.json"
    assert f"hf download Motif-Technologies/Motif-Video-2B {include} --include model_index.json" in out
    # Absolute, to work from anywhere; quoted as a shell takes them, for a cwd with a space in its path.
    model, gguf_folder = (posix_quoted(str(Path.cwd() / name)) for name in ("Motif-Video-2B", "Motif-Video-2B-GGUF"))
    assert f"--include 'feature_extractor/*' --local-dir {model}" in out and "'transformer/*'" not in out
    gguf = "hf download Motif-Technologies/Motif-Video-2B-GGUF --include '*Q4_K_M*.gguf'"
    assert f"{gguf} --local-dir {gguf_folder}" in out
    # They fill folders, not the cache a repo id is looked up in: each fix says how to check those folders, as a
    # run's error gives the run's command pointed at them.
    again = f"; then: motif-lite check -m {model} --gguf {gguf_folder}"
    found = [line for line in out.splitlines() if line.startswith("problem")]
    assert len(found) == 2 and all(line.endswith(again) for line in found), found
    assert cli.main(["check"]) == cli.EXIT_USER_ERROR  # the default repo: the folder is -m's, as given nowhere
    assert capsys.readouterr().out.count(f"; then: motif-lite check -m {model}\n") == 1
    assert cli.main(["check", "-m", str(tmp_path / "nowhere")]) == cli.EXIT_USER_ERROR
    assert "no such checkpoint folder" in capsys.readouterr().out


def test_a_damaged_gguf_of_ones_own_is_made_again_not_downloaded(tiny, tmp_path):
    # A file name that is not on the Hub has no download; an official name is downloaded into its own folder. The
    # command that makes it again names -m, the file and the type it was made with (it said CHECKPOINT, FILE.gguf
    # and Q4_K_M whatever the file's type).
    root, gguf = tiny
    remake = f"python -m motif_lite.quantize {root} -o {tmp_path}/{{}} --type Q8_0 --force"
    for name, fix in [
        ("mine.gguf", "fix: mine.gguf is not a file of Motif-Technologies/Motif-Video-2B-GGUF: make it again from the "
         f"checkpoint ({remake.format('mine.gguf')}), or copy it again"),
        ("motif-video-2b-Q8_0.gguf", "fix: download the file again (hf download Motif-Technologies/Motif-Video-2B-GGUF "
         f"--include motif-video-2b-Q8_0.gguf --local-dir {tmp_path}), or make one from the checkpoint: "
         f"{remake.format('motif-video-2b-Q8_0.gguf')}"),
    ]:  # fmt: skip
        cut = tmp_path / name
        cut.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])
        (found,) = problems(check_setup(root, gguf=cut))
        assert fix in found, found


@pytest.mark.parametrize(
    ("name", "made_with"),
    [("mine-Q6_K.gguf", "--type Q6_K --force"), ("mine.gguf", "--type TYPE --force, TYPE being the type you made")],
)
def test_a_gguf_cut_inside_its_header_is_made_again_with_the_type_its_name_tells(tiny, tmp_path, name, made_with):
    root, gguf = tiny
    cut = tmp_path / name
    data = gguf.read_bytes()
    cut.write_bytes(data[: data.index(b"motif_lite.quantize.type")])  # the metadata that records the type is cut off
    (found,) = problems(check_setup(root, gguf=cut))
    assert f"python -m motif_lite.quantize {root} -o {cut} {made_with}" in found, found
    spaced = tmp_path / "my models" / name  # the command is pasted: a space in a path is quoted
    spaced.parent.mkdir()
    shutil.copy(cut, spaced)
    (found,) = problems(check_setup(root, gguf=spaced))
    assert f"python -m motif_lite.quantize {root} -o '{spaced}' {made_with}" in found, found


@pytest.mark.parametrize(
    ("name", "metadata", "made_with"),
    [
        ("mine.gguf", {"motif_lite.quantize.type": "Q5_K_M", "general.file_type": 7}, "Q5_K_M"),  # ours first
        ("mine.gguf", {"general.file_type": 7}, "Q8_0"),  # llama.cpp's MOSTLY_Q8_0
        ("mine-Q8_0.gguf", {"general.file_type": 19}, None),  # IQ2_XXS: recorded, but not a type we make
        ("mine-Q8_0.gguf", {}, "Q8_0"),  # nothing recorded: the name tells it
        ("q8_0-from-Q4_K_M.gguf", {}, None),  # two types in the name: neither is sure
    ],
)
def test_the_type_a_gguf_was_made_with_comes_from_its_header_then_its_name(tmp_path, name, metadata, made_with):
    from motif_lite.io.gguf_source import made_with_type

    tensors = {"w": (np.zeros((2, 32), np.float32), Q.F32, (2, 32))}
    path = write_test_gguf(tmp_path / name, tensors, extra_metadata=metadata)
    assert made_with_type(path) == made_with


@pytest.mark.parametrize(
    ("kept", "said"),
    [(0.5, "file is truncated"), (4000, "it ends inside"), (300, "corrupt GGUF header"), (0, "is empty")],
)
def test_a_run_gives_a_truncated_gguf_the_fix_check_gives(tiny, tmp_path, capsys, kept, said):
    # The run said only that the file is truncated (cut in its tensor data, in its header, or empty).
    root, gguf = tiny
    cut = tmp_path / "mine.gguf"
    cut.write_bytes(gguf.read_bytes()[: int(kept * gguf.stat().st_size) if isinstance(kept, float) else kept])
    code = cli.main(["run", "-m", str(root), "--gguf", str(cut), "-p", "fox", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    (found,) = [f.message for f in check_setup(root, gguf=cut).problems]
    fix = found.split("; fix: ", 1)[1]
    assert code == cli.EXIT_USER_ERROR and said in err and err.rstrip().endswith(fix), err


def test_a_text_encoder_gguf_stands_in_for_the_text_encoder_weights(tiny, tmp_path, capsys):
    from motif_lite.encoders.text_gguf import read_text_encoder_gguf
    from motif_lite.quantize.cli import main as quantize_main

    root = tiny[0]
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    without = tmp_path / "no-text-weights"  # text_encoder/ keeps only its config, as a GGUF user downloads it
    shutil.copytree(root, without, ignore=shutil.ignore_patterns("model*.safetensors*"))
    assert not check_setup(without).passed  # the weights are needed without the GGUF
    report = check_setup(without, text_encoder_gguf=te)
    assert report.passed, problems(report)
    lines = [f.message for f in report.findings if f.subject == str(te)]
    found = read_text_encoder_gguf(te)
    made = f"Q8_0, made by motif-lite {__version__}"
    summary = f"text encoder GGUF ({made}), {len(found.tensors)} tensors: {types_and_sizes(found.tensors)}"
    assert lines == [summary + "; its config matches text_encoder/config.json"]
    assert report.plan is not None

    # A checkpoint whose text encoder config differs from the one in the file: one problem, naming the file.
    config = json.loads((without / "text_encoder/config.json").read_text())
    config["text_config"]["rms_norm_eps"] = 0.5
    (without / "text_encoder/config.json").write_text(json.dumps(config))
    report = check_setup(without, text_encoder_gguf=te)
    assert [f.subject for f in report.problems] == [str(te)] and "rms_norm_eps" in report.problems[0].message

    assert cli.main(["check", "-m", str(root), "--text-encoder-gguf", str(tmp_path / "none.gguf")]) == 2
    out = capsys.readouterr().out
    assert "none.gguf: no such file; fix: make one: " in out and "--component text_encoder" in out

    # The two kinds of GGUF swapped: each problem's fix is the flag the file goes to, not a download.
    transformer_gguf = tiny[1]
    (swapped,) = problems(check_setup(root, gguf=te))
    assert swapped.endswith(f"fix: pass it as --text-encoder-gguf {te}") and "hf download" not in swapped, swapped
    (swapped,) = problems(check_setup(root, text_encoder_gguf=transformer_gguf))
    assert swapped.endswith(f"fix: pass it as --gguf {transformer_gguf}"), swapped
    spaced = tmp_path / "my models" / "te.gguf"  # the fix is pasted: a path with a space is quoted
    spaced.parent.mkdir()
    shutil.copy(te, spaced)
    (swapped,) = problems(check_setup(root, gguf=spaced))
    assert swapped.endswith(f"fix: pass it as --text-encoder-gguf '{spaced}'"), swapped


def test_a_text_encoder_gguf_needs_no_text_encoder_config(tiny, tmp_path):
    """A run builds the encoder from the config the GGUF embeds (it compares it with text_encoder/config.json only
    when that is there): check called the absent config a problem, and said the configs matched without one."""
    from motif_lite.quantize.cli import main as quantize_main

    root = tiny[0]
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    without = tmp_path / "no-text-encoder"
    shutil.copytree(root, without, ignore=shutil.ignore_patterns("text_encoder"))
    assert "text_encoder/config.json: missing" in "\n".join(problems(check_setup(without)))
    report = check_setup(without, text_encoder_gguf=te)
    assert report.passed, problems(report)
    (line,) = [f.message for f in report.findings if f.subject == str(te)]
    assert "matches" not in line, line


def test_help_shows_examples(capsys, monkeypatch):
    # That every command's help fits the docs' width and its examples parse: tests/test_cli.py.
    found = examples(help_text(capsys, monkeypatch, cli.main, ["check"]), "motif-lite check")
    assert len(found) >= 3 and any("--gguf" in example for example in found), found


def test_a_component_folder_given_as_the_checkpoint_names_the_checkpoint(tiny):
    root = tiny[0]
    report = check_setup(root / "transformer")
    assert problems(report) == [
        f"problem  {root / 'transformer'}: is the transformer/ folder of the checkpoint {root}; fix: pass -m {root}"
    ]


def test_a_folder_given_for_a_weight_file_gets_the_file_in_it_as_the_fix(tiny):
    # ComfyUI's models/vae/ or a checkpoint's vae/ given to --vae: the fix was "pass the path of the .safetensors file"
    root = tiny[0]
    [finding] = check_setup(root, weights={"vae": root / "vae"}).problems
    assert finding.message.endswith(f"; fix: --vae {root / 'vae' / 'diffusion_pytorch_model.safetensors'}")


def test_one_shard_given_for_a_weight_file_gets_the_fix_its_refusal_gives(tiny, tmp_path):
    # The refusal said "pass the checkpoint folder ... with -m instead", its fix: "pass the .safetensors file"
    shard = tmp_path / "model-00001-of-00002.safetensors"
    shutil.copy(tiny[0] / "text_encoder" / "model.safetensors", shard)
    for given in (shard, tmp_path):  # the shard, or its folder
        [finding] = check_setup(tiny[0], weights={"text_encoder": given}).problems
        assert finding.message.endswith("; fix: -m with the checkpoint folder that holds every shard, and no "
                                        "--text-encoder"), finding.message  # fmt: skip
    # A folder of one file named as the only shard ("-00001-of-00001"): that file is the whole component.
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(tiny[0] / "text_encoder" / "model.safetensors", only / "model-00001-of-00001.safetensors")
    [finding] = check_setup(tiny[0], weights={"text_encoder": only}).problems
    assert finding.message.endswith(f"; fix: --text-encoder {only / 'model-00001-of-00001.safetensors'}"), finding


@pytest.mark.parametrize(
    ("name", "capability", "advised"),
    [("Tesla T4", (7, 5), True), ("NVIDIA GeForce GTX 1080", (6, 1), True), ("NVIDIA GeForce RTX 3060", (8, 6), False)],
)
def test_a_gpu_without_bf16_tensor_cores_is_told_runs_use_fp16(monkeypatch, name, capability, advised):
    """bf16 has tensor cores from compute capability 8.0 on; before that runs default to fp16 (fp32 before 7.0), and
    `check` says so on the GPU's own row, with what fp16 risks."""
    import torch

    from motif_lite.checkup.environment import _check_gpu
    from motif_lite.checkup.report import Checkup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (6 * 2**30, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability)
    # A build with code for all three GPUs (torch's CUDA 12.6 wheels): else the installed build decides, and a CUDA
    # 12.8+ one (from PyPI where no CPU build is at hand) has none for the GTX 1080, a problem before any advice.
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"])
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    memory = f"{memory_size(6 * 2**30)} free of {memory_size(8 * 2**30)}; other processes hold {memory_size(2 * 2**30)}"
    assert finding.subject == "GPU cuda:0" and memory in finding.message, finding.message  # what nvidia-smi lists
    if advised:
        assert finding.level == "warning" and f"{name} (compute capability {capability[0]}.{capability[1]})" in (
            finding.message
        )
        if capability < (7, 0):  # Pascal: fp32, as ComfyUI computes there (tests/test_older_gpus.py)
            assert "runs here use fp32 unless --dtype" in finding.message and "fp16" in finding.message
        else:
            assert "no bfloat16 tensor cores: runs here use fp16 unless --dtype" in finding.message
            assert "--dtype fp32 is safe" in finding.message
    else:
        assert finding.level == "ok" and finding.message.startswith(f"{name}, {memory} (nvidia-smi lists them")


def test_the_gpu_row_counts_the_checks_own_cuda_context_with_the_other_processes(monkeypatch):
    """Reading a GPU's memory starts CUDA in the reading process, whose context (a few hundred MiB) is then among what
    "other processes hold": the row said only that "CUDA's own state" counts there, as if the check held nothing."""
    import torch

    from motif_lite.checkup.environment import _check_gpu
    from motif_lite.checkup.report import Checkup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (70 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_80", "sm_90"])
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    held = f"other processes hold {memory_size(10 * 2**30)} (nvidia-smi lists them; this check's own CUDA context"
    assert finding.level == "ok" and held in finding.message, finding.message


def test_a_gpu_that_cannot_be_opened_is_a_problem_not_a_traceback(monkeypatch):
    """A GPU another process holds in exclusive mode, or one full to the last MiB, fails as CUDA opens it: `check`
    said nothing of it but a traceback."""
    import torch

    from motif_lite.checkup.environment import _check_gpu
    from motif_lite.checkup.report import Checkup

    def busy(index):
        raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable\nmore lines")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", busy)
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert finding.level == "problem" and finding.subject == "GPU cuda:0", finding
    assert "cannot be opened (CUDA error: CUDA-capable device(s) is/are busy or unavailable)" in finding.message
    assert "nvidia-smi" in finding.message and "\n" not in finding.message


def test_the_dtype_note_is_for_bf16_on_such_a_gpu_only(monkeypatch):
    import torch

    from motif_lite.dtypes import dtype_note

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (7, 5))
    gpu = torch.device("cuda", 0)
    assert "--dtype fp16" in dtype_note(gpu, torch.bfloat16)
    assert dtype_note(gpu, torch.float16) is None and dtype_note(gpu, torch.float32) is None
    assert dtype_note(torch.device("cpu"), torch.bfloat16) is None


def test_the_plan_check_shows_is_the_dry_run_plan_of_a_default_run(tiny, tmp_path, monkeypatch):
    # `check`'s memory plan is that of `motif-lite run` with the files given and every other flag left out.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.quantize.cli import main as quantize_main

    root, gguf = tiny
    monkeypatch.chdir(
        tmp_path
    )  # the default output goes to the current folder, which may be read-only (a checkout of another user's)
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    planned = []
    plan = PlannedRun.plan
    monkeypatch.setattr(PlannedRun, "plan", lambda *args, **kw: planned.append(plan(*args, **kw)) or planned[-1])
    checked = []
    for flags in ([], ["--gguf", str(gguf)], ["--gguf", str(gguf), "--text-encoder-gguf", str(te)]):
        report = check_setup(root, gguf=gguf if flags else None, text_encoder_gguf=te if len(flags) > 2 else None)
        assert report.plan is not None, problems(report)
        assert cli.main(["run", "--dry-run", "-m", str(root), "-p", "a fox", *flags]) == 0
        assert report.plan.stages == planned[-1].stages, flags
        checked.append(report.plan.stages)
    assert checked[0] != checked[1] != checked[2]  # each file changes the plan: the comparison sees them


@pytest.mark.parametrize("budget", [[], ["--vram", "6"]])
def test_a_run_on_a_gpu_that_cannot_be_opened_says_so_in_one_line(checkpoint, monkeypatch, capsys, tmp_path, budget):
    # `check` names such a GPU on its row; a run planning for it (its free memory, or its total against --vram)
    # ended in CUDA's traceback.
    import torch

    from motif_lite import cli

    def busy(device=None):
        raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable\nmore lines")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(torch.cuda, "mem_get_info", busy)
    args = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cuda:0"]
    code = cli.main([*args, "--dry-run", *budget])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "GPU cuda:0 cannot be opened (CUDA error: CUDA-capable device(s) is/are busy or unavailable); " in err
    assert "nvidia-smi lists the processes that hold it" in err, err


def test_imageio_ffmpeg_not_installed_is_one_line_not_a_traceback(monkeypatch):
    # The first GPU run (2026-12-04) was on an image without imageio-ffmpeg: every request with a video output
    # stopped on ModuleNotFoundError. `None` in sys.modules makes its import fail as a missing package's does.
    import sys

    from motif_lite.checkup.environment import _check_ffmpeg
    from motif_lite.checkup.report import Checkup
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.ffmpeg import find_ffmpeg

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(MotifLiteError, match=r"^imageio-ffmpeg is not installed.*pip install imageio-ffmpeg; or"):
        find_ffmpeg()
    report = Checkup()
    _check_ffmpeg(report)
    (finding,) = report.findings
    assert finding.level == "warning" and "pip install imageio-ffmpeg" in finding.message


def test_a_folder_of_several_weight_files_gets_the_fix_that_asks_for_one(tiny, tmp_path):
    # Only a folder's one file can be named in the fix: of two, check cannot tell which the user meant.
    folder = tmp_path / "encoders"
    folder.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(tiny[0] / "text_encoder" / "model.safetensors", folder / name)
    [finding] = check_setup(tiny[0], weights={"text_encoder": folder}).problems
    assert finding.message.endswith("; fix: pass the path of the .safetensors file to --text-encoder"), finding


def test_the_memory_plan_row_numbers_the_plans_from_one(tiny):
    # The CPU has no budget: its plan is the fastest, which the row calls 1, as the dry run does.
    report = check_setup(tiny[0])
    [row] = [f for f in report.findings if f.subject == "memory plan"]
    assert report.plan is not None and report.plan.ladder_index == 0
    assert f"plan 1 of {report.plan.ladder_size} (1 = fastest)" in row.message, row.message


@pytest.mark.parametrize("whole", [True, False])
def test_a_quantizers_partial_file_is_named_as_one_by_check_and_run(tiny, tmp_path, capsys, whole):
    # A quantizer killed with kill -9 leaves OUT.gguf.tmp, its header whole: check passed it (a whole one) or called
    # it truncated with a fix that wrote to the .tmp name (which the quantizer refuses), and a run loaded it.
    root, gguf = tiny
    partial = tmp_path / "mine-Q4_K_M.gguf.tmp"
    data = gguf.read_bytes()
    partial.write_bytes(data if whole else data[: len(data) // 2])
    remake = f"python -m motif_lite.quantize {root} -o {tmp_path / 'mine-Q4_K_M.gguf'}"
    (found,) = problems(check_setup(root, gguf=partial))
    assert "partial file of a quantizer run" in found and found.endswith(f"fix: delete it and quantize again: {remake}")
    code = cli.main(["run", "-m", str(root), "--gguf", str(partial), "-p", "fox", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "partial file of a quantizer run" in err, err
    assert f"delete it and quantize again: {remake}" in err, err  # run's fix named CHECKPOINT, not the -m given
    assert not (tmp_path / "a.mp4").exists()


def test_a_quantizers_partial_text_encoder_file_is_named_as_one(tiny, tmp_path):
    from motif_lite.quantize.cli import main as quantize_main

    root = tiny[0]
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    partial = te.rename(tmp_path / "te.gguf.tmp")
    (found,) = problems(check_setup(root, text_encoder_gguf=partial))
    remake = f"python -m motif_lite.quantize {root} --component text_encoder -o {te}"
    assert "partial file of a quantizer run" in found and found.endswith(f"fix: delete it and quantize again: {remake}")
    with pytest.raises(CheckpointError, match="partial file of a quantizer run"):
        locate_sources(root, text_encoder_gguf=partial, require_weights=False, download=False)


def test_a_missing_file_named_like_a_partial_one_is_no_such_file(tiny, tmp_path):
    (found,) = problems(check_setup(tiny[0], gguf=tmp_path / "gone.gguf.tmp"))
    assert "no such GGUF file" in found and "partial" not in found, found


def test_check_keeps_module_warning_filters_for_other_libraries_warnings(tmp_path, monkeypatch):
    # check records the warnings a parser raises and re-emits those about no file of the checkpoint: without their
    # module, `-W ignore:::transformers` (a module filter) stopped matching and they were shown all the same.
    import sys
    import types
    import warnings

    from motif_lite.checkup.checkpoint import _parsed
    from motif_lite.checkup.report import Checkup

    (tmp_path / "motif_fake_library.py").write_text(
        "import warnings\n\ndef parse():\n    warnings.warn('a library speaks', UserWarning)\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import motif_fake_library

    monkeypatch.setitem(sys.modules, "motif_fake_library", motif_fake_library)  # gone again after the test
    source = types.SimpleNamespace(root=tmp_path / "checkpoint")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module="motif_fake_library")
        assert _parsed(Checkup(), source, "config.json", motif_fake_library.parse, "a config") == 1
    assert shown == []
    with warnings.catch_warnings(record=True) as shown:  # unfiltered, still shown once, from where it was raised
        warnings.simplefilter("always")
        _parsed(Checkup(), source, "config.json", motif_fake_library.parse, "a config")
    assert [(str(w.message), w.filename) for w in shown] == [("a library speaks", motif_fake_library.__file__)]


def test_files_missing_from_the_cache_come_with_the_free_space_where_they_would_go(
    tiny, no_network, monkeypatch, tmp_path
):
    # A small / and a big /data: check named the missing files and the commands, not the room for them anywhere.
    from collections import namedtuple

    from huggingface_hub import constants

    usage = namedtuple("usage", "total used free")
    free = {no_network.parent: 31 * 10**9}  # the cache is not made yet: its parent's disk counts
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, free.get(Path(path), 7 * 10**9)))
    monkeypatch.chdir(tmp_path)

    def disk_lines(*args, **kwargs) -> list[str]:
        return [finding.line() for finding in check_setup(*args, **kwargs).findings if finding.subject == "disk"]

    (disk,) = disk_lines("Motif-Technologies/Motif-Video-2B")  # no_network's HF_HUB_OFFLINE=1: a run downloads nothing
    assert f"cache {constants.HF_HUB_CACHE}, where downloads are off (HF_HUB_OFFLINE=1 is set; a first run" in disk
    assert "run downloads" not in disk
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # online: the Hub calls stay failures (none is made)
    (disk,) = disk_lines("Motif-Technologies/Motif-Video-2B", gguf="Q4_K_M")
    assert disk.startswith(f"ok       disk: {file_size(31 * 10**9)} free on the disk of the Hugging Face cache ")
    assert f"cache {constants.HF_HUB_CACHE}, where motif-lite run downloads what is missing (about 10 GB with" in disk
    assert "(about 10 GB with a Q4_K_M GGUF for a first run" in disk  # README's figure is that variant's
    assert "current folder" not in disk  # the same disk: said once
    (disk,) = disk_lines("Motif-Technologies/Motif-Video-2B")
    assert "(about 13 GB with the bf16 transformer for a first run; it says the size first, and refuses" in disk
    assert disk_lines(str(tiny[0]), gguf=str(tiny[1])) == []  # everything at hand: nothing to download
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()  # the figures are the README's
    assert "about 10 GB with a Q4_K_M GGUF" in readme and "about\n  13 GB with the bf16 transformer" in readme
    # The current folder on another disk: its room too, for the `hf download` commands that fill folders there.
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no folder on another disk than the temporary one")
    monkeypatch.chdir(other)
    (disk,) = disk_lines("Motif-Technologies/Motif-Video-2B")
    assert f"; {file_size(7 * 10**9)} free in the current folder, which the download commands above fill" in disk


def test_a_disk_too_small_for_a_first_run_is_a_warning_not_ok(no_network, monkeypatch, tmp_path):
    # 2 GB free and nothing cached: check said "ok disk", then run refused the download at once.
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    room = {"free": 2 * 10**9}
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, room["free"]))
    monkeypatch.chdir(tmp_path)

    def disk(**kwargs):
        findings = check_setup("Motif-Technologies/Motif-Video-2B", **kwargs).findings
        (found,) = [finding for finding in findings if finding.subject == "disk"]
        return found

    for gguf, first_run in ((None, 13 * 10**9), ("Q4_K_M", 10 * 10**9)):
        room["free"] = first_run - 1
        short = disk(gguf=gguf)
        assert short.level == "warning" and short.message.endswith(": not enough for a first run")
        room["free"] = first_run
        assert disk(gguf=gguf).level == "ok"  # exactly the figure it quotes: no warning


def test_a_version_that_is_no_string_names_no_version(tmp_path):
    # A number where the version goes was once read as a string: its value taken for the string's length, and the
    # next entry's bytes for the version (here the next key's length, 65: "A"). The version now comes from the
    # metadata the file's one read gave (gguf's reader, which reads a number as one).
    import gguf

    from motif_lite.weights.gguf_file import QUANTIZER_VERSION_KEY, _metadata, recorded_version

    named = write_test_gguf(tmp_path / "named.gguf", {}, extra_metadata={QUANTIZER_VERSION_KEY: "1.2.0"})
    assert recorded_version(_metadata(gguf.GGUFReader(named))) == "1.2.0"
    number = {QUANTIZER_VERSION_KEY: np.uint64(1), "k" * 65: "next"}
    numbered = write_test_gguf(tmp_path / "number.gguf", {}, extra_metadata=number)
    assert recorded_version(_metadata(gguf.GGUFReader(numbered))) is None


def test_check_plans_with_the_files_its_lines_describe(copy, monkeypatch):
    """A config that was absent when check looked (its line says so) is planned as absent, though made before the
    plan: the report tells of one checkpoint, and the plan reads no file the file checks did not."""
    from motif_lite import checkup

    scheduler = copy / "scheduler" / "scheduler_config.json"
    scheduler.unlink()
    check_checkpoint = checkup.check_checkpoint

    def made_after_the_look(report, files, **kwargs):
        checked = check_checkpoint(report, files, **kwargs)
        scheduler.write_text("{not json")  # read now, the plan would be refused
        return checked

    monkeypatch.setattr(checkup, "check_checkpoint", made_after_the_look)
    report = check_setup(copy)
    assert report.plan is not None and not problems(report), problems(report)
    assert any(f.subject == "scheduler/scheduler_config.json" and "absent" in f.message for f in report.findings)


def test_one_check_reads_each_gguf_header_once(tiny, tmp_path, monkeypatch):
    # The memory plan read both GGUF files' headers again, after their own lines had read them: now it is handed
    # what those lines read.
    from motif_lite.quantize.cli import main as quantize_main
    from motif_lite.weights import gguf_file

    root, gguf = tiny
    te = tmp_path / "te.gguf"
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(te), "--quiet"]) == 0
    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(path) or read_header(path))
    report = check_setup(root, gguf=gguf, text_encoder_gguf=te)
    assert report.passed and report.plan is not None, problems(report)
    assert sorted(reads) == sorted([gguf, te]), reads


TWO_TENSORS = ("x_embedder.proj.weight", "context_embedder.linear_1.weight")  # a split file: one a part


def test_a_part_of_a_split_gguf_is_said_with_the_merge_alone(tiny, tmp_path, no_network):
    # The fix was "make it again from the checkpoint" (the first part, its tensors missing) or "it is another
    # model's file" (a later part, which carries no general.architecture): both files are whole and the user's.
    transformer = write_split_gguf(tmp_path / "mv-Q8_0.gguf", TWO_TENSORS)[1]
    te = write_split_gguf(tmp_path / "te-Q8_0.gguf", TWO_TENSORS, arch="t5gemma2_encoder")[1]
    report = check_setup(tiny[0], gguf=transformer, text_encoder_gguf=te)
    said = {f.subject: f.message for f in report.problems}
    for part, name in ((transformer, "mv-Q8_0"), (te, "te-Q8_0")):
        merge = f"llama-gguf-split --merge {tmp_path / f'{name}-00001-of-00002.gguf'} {tmp_path / f'{name}.gguf'}"
        assert said[str(part)] == (
            "is part 2 of a GGUF file split into 2 files (llama.cpp's gguf-split), and motif-lite reads one whole "
            f"file; fix: merge the parts into one with llama.cpp's tool: {merge}, then pass {tmp_path / name}.gguf"
        )


def test_a_comfyui_conversion_without_its_5d_weight_is_said_with_the_step_that_adds_it(tiny, tmp_path, no_network):
    # The fix was "it is another model's file": the weight ComfyUI-GGUF's convert.py leaves out was what made the
    # names the transformer's.
    z = np.zeros((2, 32), np.float32)
    spec = {
        "x_embedder.proj.bias": (np.zeros(2, np.float32), Q.F32, (2,)),
        "context_embedder.linear_1.weight": (z, Q.F16, z.shape),
    }
    path = write_test_gguf(tmp_path / "motif-BF16.gguf", spec, arch="hyvid")
    (problem,) = [f.message for f in check_setup(tiny[0], gguf=path).problems]
    fixed = tmp_path / "motif-BF16-fixed.gguf"
    assert problem.endswith(
        "; fix: add it back with ComfyUI-GGUF's tools/fix_5d_tensors.py, run in the folder where convert.py saved "
        f"fix_5d_tensors_hyvid.safetensors (it reads that file): python fix_5d_tensors.py --src {path} --dst {fixed}, "
        f"then pass {fixed}"
    )


@pytest.mark.parametrize(
    ("given", "fix"),
    [
        ("Motif-Technologies/Motif-Video-2B-GGUF", "--gguf takes one of its variants, e.g. --gguf Q4_K_M"),
        ("city96/Motif-Video-2B-gguf", "if it is a Hub repo, download its file first: hf download city96/"),
        ("motif-video-2b-Q8_0.gguf", "(for this name: --gguf Q8_0)"),
    ],
)
def test_a_gguf_that_is_not_here_is_said_as_run_says_it(tiny, no_network, given, fix):
    # check said "no such GGUF file; fix: pass the path of a .gguf file (or its folder), or a variant name such as
    # Q4_K_M" where run names the official repo's variants, the download of another repo's file, or the variant
    # the official file's name carries.
    from motif_lite.io.gguf_source import MissingGGUFError, find_gguf

    with pytest.raises(MissingGGUFError) as error:
        find_gguf(given)
    assert fix in error.value.fix
    assert problems(check_setup(tiny[0], gguf=given)) == [
        f"problem  {given}: {error.value.problem}; fix: {error.value.fix}"
    ]


def test_a_gguf_folder_of_several_files_names_them(tiny, tmp_path):
    # The fix was "pass the path of one .gguf file" whatever the folder held; a run lists the files.
    folder = tmp_path / "unet"
    folder.mkdir()
    names = [f"x-{n}.gguf" for n in range(8)]
    for name in names:
        (folder / name).write_bytes(b"GGUF")
    (found,) = problems(check_setup(tiny[0], gguf=folder))
    listed = ", ".join(str(folder / name) for name in names[:6])
    assert found.endswith(f"holds 8 .gguf files; fix: pass the path of one .gguf file: {listed}, and 2 more")


def test_a_folder_of_the_parts_of_one_split_gguf_is_said_as_that_file(tiny, tmp_path, no_network):
    # It was "holds 2 .gguf files; fix: pass the path of one .gguf file", and either part then said it is a part.
    from motif_lite.io.gguf_source import find_gguf

    folder = tmp_path / "unet"
    folder.mkdir()
    first = write_split_gguf(folder / "mv-Q8_0.gguf", TWO_TENSORS)[0]
    assert find_gguf(folder) == first
    (found,) = problems(check_setup(tiny[0], gguf=folder))
    assert found.startswith(f"problem  {first}: is part 1 of a GGUF file split into 2 files")
    assert found.endswith(
        f"llama-gguf-split --merge {first} {folder / 'mv-Q8_0.gguf'}, then pass {folder}/mv-Q8_0.gguf"
    )


@pytest.mark.parametrize("case", [str.strip, str.lower])
def test_the_checkpoint_repos_id_given_to_gguf_is_said_to_hold_no_gguf(tiny, tmp_path, monkeypatch, no_network, case):
    # -m's repo id given to --gguf got "hf download Motif-Technologies/Motif-Video-2B --include FILE.gguf", which
    # fetches nothing: the repo holds safetensors only, as the refusal of its web address says.
    from motif_lite.choices import MOTIF_REPO
    from motif_lite.io.gguf_source import find_gguf, gguf_address_problem

    monkeypatch.chdir(tmp_path)
    given = case(MOTIF_REPO)
    problem, fix = gguf_address_problem(f"https://huggingface.co/{MOTIF_REPO}")
    with pytest.raises(CheckpointError) as error:
        find_gguf(given)
    assert str(error.value) == f"{given}: {problem}; {fix}"
    assert problems(check_setup(tiny[0], gguf=given)) == [f"problem  {given}: {problem}; fix: {fix}"]


def test_a_gguf_named_as_another_type_than_it_holds_is_said_in_the_runs_notes(tiny, tmp_path, no_network):
    # A Q8_0 file named ...Q4_K_M... ran without a word: only `check` said its real type.
    misnamed = tmp_path / "mv-Q4_K_M.gguf"
    shutil.copy(tiny[1], misnamed)
    notes = locate_sources(tiny[0], misnamed, download=False).notes
    said = "mv-Q4_K_M.gguf is named Q4_K_M, but its header says it holds Q8_0: it loads as Q8_0"
    assert [note for note in notes if "is named" in note] == [said]
    assert not [note for note in locate_sources(tiny[0], tiny[1], download=False).notes if "is named" in note]


def test_a_gguf_named_by_its_types_family_or_with_no_type_recorded_gets_no_note_on_its_name():
    # x-Q4_K.gguf holding Q4_K_S was said to be "named Q4_K_M" (llama-quantize's alias, not what the name says),
    # though a bare Q4_K names the family both belong to; a header recording llama.cpp's GUESSED was said to hold it.
    from motif_lite.io.gguf_source import named_type_note

    assert named_type_note(Path("x-Q4_K.gguf"), "Q4_K_S") is None
    assert named_type_note(Path("x-q5_k.gguf"), "Q5_K_M") is None
    assert named_type_note(Path("x-Q4_K_M.gguf"), "GUESSED") is None
    said = "x-Q4_K.gguf is named Q4_K, but its header says it holds Q8_0: it loads as Q8_0"
    assert named_type_note(Path("x-Q4_K.gguf"), "Q8_0") == said
    assert named_type_note(Path("x-Q4_K_S-fixed.gguf"), "Q4_K_M") is not None  # a whole file type is not a family


def test_a_gguf_named_by_two_types_gets_no_note_on_its_name():
    # Mutation pass 71: x-Q8_0-Q4_0.gguf names no one type, so its header's F16 contradicts neither; with one type
    # named it gets the note.
    from motif_lite.io.gguf_source import named_type_note

    assert named_type_note(Path("x-Q8_0-Q4_0.gguf"), "F16") is None
    assert named_type_note(Path("x-Q8_0.gguf"), "F16") is not None


def test_an_imageio_ffmpeg_this_user_may_not_read_is_a_warning_not_a_traceback(monkeypatch):
    # Installed by another user under umask 077: a file it may not read made its import a PermissionError, a folder
    # it may not enter an empty namespace package, whose get_ffmpeg_exe was an AttributeError; both tracebacks.
    import importlib.abc
    import sys
    import types

    from motif_lite.checkup.environment import _check_ffmpeg
    from motif_lite.checkup.report import Checkup
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.ffmpeg import find_ffmpeg

    class Unreadable(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "imageio_ffmpeg":
                raise PermissionError(13, "Permission denied", "/root/site-packages/imageio_ffmpeg/__init__.py")

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.delitem(sys.modules, "imageio_ffmpeg", raising=False)
    with monkeypatch.context() as patch:
        patch.setattr(sys, "meta_path", [Unreadable(), *sys.meta_path])
        with pytest.raises(MotifLiteError, match=r"^imageio-ffmpeg's files cannot be read \(\[Errno 13\] Permission"):
            find_ffmpeg()
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", types.ModuleType("imageio_ffmpeg"))  # an empty namespace
    with pytest.raises(MotifLiteError, match=r"^imageio-ffmpeg's files cannot be read .*reinstall imageio-ffmpeg"):
        find_ffmpeg()
    report = Checkup()
    _check_ffmpeg(report)
    (finding,) = report.findings
    assert finding.level == "warning" and "reinstall imageio-ffmpeg" in finding.message


@pytest.mark.parametrize(
    "failure",
    [ModuleNotFoundError("No module named 'imageio_ffmpeg.binaries'"), PermissionError(13, "Permission denied")],
)
def test_an_imageio_ffmpeg_whose_files_cannot_be_read_is_a_warning_not_a_traceback(monkeypatch, failure):
    # Its package imported, its binaries' package missing or unreadable (a partly removed install, or one in a home
    # this user may not enter): `check`, which is there to find such things, stopped on that ImportError.
    import imageio_ffmpeg

    from motif_lite.checkup.environment import _check_ffmpeg
    from motif_lite.checkup.report import Checkup
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.ffmpeg import find_ffmpeg

    def unreadable() -> str:
        raise failure

    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", unreadable)
    with pytest.raises(MotifLiteError) as error:
        find_ffmpeg()
    assert str(error.value).startswith(f"imageio-ffmpeg's files cannot be read ({failure}), and .mp4")
    assert "install ffmpeg or reinstall imageio-ffmpeg; or write .webp" in str(error.value)
    report = Checkup()
    _check_ffmpeg(report)
    (finding,) = report.findings
    assert finding.level == "warning" and "reinstall imageio-ffmpeg" in finding.message
