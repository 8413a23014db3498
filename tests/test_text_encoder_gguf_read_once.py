"""The --text-encoder-gguf file's header is read once as `serve` and `run` start: the early check reads it (its
header walked, its config and tensors checked), and what it found is handed on to the plan's sizes and the load."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import RUNTIME_FLAGS  # noqa: E402

from motif_lite import cli  # noqa: E402
from motif_lite.quantize.cli import main as quantize  # noqa: E402


@pytest.fixture(scope="module")
def text_gguf(shared_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    root = shared_checkpoint[0]
    out = tmp_path_factory.mktemp("te_gguf") / "te-Q8_0.gguf"
    assert quantize([str(root), "--component", "text_encoder", "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    return root, out


@pytest.fixture
def header_reads(monkeypatch) -> list[Path]:
    from motif_lite.weights import gguf_file

    reads: list[Path] = []
    read_header = gguf_file._validate_header  # every read of a header walks it first (`read_gguf`, `tensor_bytes`)
    monkeypatch.setattr(gguf_file, "_validate_header", lambda path: reads.append(path) or read_header(path))
    return reads


def test_serve_reads_the_text_encoder_gguf_header_once(text_gguf, header_reads, tmp_path, monkeypatch):
    from motif_lite.server.runner import VideoServer

    root, gguf = text_gguf
    loaded = []
    monkeypatch.setattr(VideoServer, "serve", lambda self, sock, load: loaded.append(load()))  # load, then stop
    flags = ["--port", "0", *RUNTIME_FLAGS, "--vram", "4", "--max-video", "48x32x5"]
    args = ["serve", "-m", str(root), "--text-encoder-gguf", str(gguf), "--data", str(tmp_path / "data"), *flags]
    assert cli.main(args) == 0
    ((pipe, config),) = loaded
    assert config.plan is not None
    assert header_reads == [gguf]


def test_run_reads_the_text_encoder_gguf_header_once(text_gguf, header_reads, tmp_path):
    root, gguf = text_gguf
    args = ["run", "-m", str(root), "-p", "a cat", "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1",
            "--dtype", "fp32", "--device", "cpu", "-o", str(tmp_path / "a.gif"),
            "--text-encoder-gguf", str(gguf)]  # fmt: skip
    assert cli.main(args) == 0
    assert header_reads == [gguf]


def test_the_file_read_once_is_still_checked_against_the_checkpoints_config(text_gguf, tmp_path, capsys):
    # Read once, before the checkpoint is found: its config is compared with the checkpoint's all the same.
    import json
    import shutil

    root, gguf = text_gguf
    changed = tmp_path / "changed"
    shutil.copytree(root, changed)
    config = changed / "text_encoder/config.json"
    values = json.loads(config.read_text())
    values["text_config"]["rms_norm_eps"] = 1e-5
    config.write_text(json.dumps(values))
    args = ["run", "-m", str(changed), "-p", "a cat", "-o", str(tmp_path / "a.gif"), "--text-encoder-gguf", str(gguf)]
    assert cli.main([*args, "--device", "cpu", "--dry-run"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "another text encoder" in err and "text_config.rms_norm_eps 1e-06 in the file vs 1e-05" in err, err
    assert "Traceback" not in err
