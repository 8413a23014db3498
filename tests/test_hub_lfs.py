"""A checkpoint cloned with `git clone` without git-lfs holds ~130-byte text pointers in place of its large files:
a run, `motif-lite check` and every reader name them as Git LFS pointers with the Git LFS fix, instead of a bad
safetensors header, bad JSON or "not a GGUF file"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from motif_lite import cli  # noqa: E402
from motif_lite.checkpoint import locate_sources  # noqa: E402
from motif_lite.checkup import check_setup  # noqa: E402
from motif_lite.errors import LFS_FIX, CheckpointError, LFSPointerError  # noqa: E402
from motif_lite.weights.gguf_file import read_gguf  # noqa: E402
from motif_lite.weights.safetensors_header import read_header  # noqa: E402

POINTED = (
    "text_encoder/model.safetensors",
    "tokenizer/tokenizer.json",
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
)
FIX = "git lfs install && git lfs pull"


def lfs_pointer(path: Path, size: int = 8_600_000_000) -> Path:
    """Replace `path` by what `git clone` leaves without git-lfs (the pointer format of the Git LFS spec)."""
    path.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{'4d7a' * 16}\nsize {size}\n")
    return path


@pytest.fixture(scope="module")
def tiny(shared_checkpoint_and_gguf) -> tuple[Path, Path]:
    return shared_checkpoint_and_gguf  # read only, as conftest's shared_checkpoint_and_gguf says


@pytest.fixture
def clone(tiny, tmp_path) -> Path:
    """The tiny checkpoint as a clone without git-lfs: its weights and tokenizer.json are pointers."""
    root = shutil.copytree(tiny[0], tmp_path / "Motif-Video-2B")
    for rel in POINTED:
        lfs_pointer(root / rel)
    return root


def test_a_run_names_every_pointer_before_reading_any(clone, no_network, capsys):
    with pytest.raises(CheckpointError) as error:
        locate_sources(clone)
    message = str(error.value)
    assert message.startswith(f"{clone}: {', '.join(POINTED)} are Git LFS pointers") and FIX in message
    # With a GGUF the transformer's weights are not read: a pointer left there is no problem of the run's.
    with pytest.raises(CheckpointError) as error:
        locate_sources(clone, gguf=str(no_network / "unused.gguf"))
    assert "transformer/" not in str(error.value)
    assert cli.main(["run", "-m", str(clone), "-p", "fox", "-o", str(clone / "fox.mp4")]) == 2
    assert FIX in capsys.readouterr().err


def test_a_pointer_with_extension_lines_is_named_too(tiny, tmp_path, no_network):
    # The spec lets a pointer name the extensions that cleaned the file, a line each before its oid, up to 1,024
    # bytes in all: such a pointer is longer than the ~130 bytes of a plain one.
    root = shutil.copytree(tiny[0], tmp_path / "Motif-Video-2B")
    extensions = "".join(f"ext-{n}-filter{n} sha256:{'5e' * 32}\n" for n in range(3))
    for rel in ("tokenizer/tokenizer.json", "vae/diffusion_pytorch_model.safetensors"):
        pointer = lfs_pointer(root / rel)
        version, rest = pointer.read_text().split("\n", 1)
        pointer.write_text(f"{version}\n{extensions}{rest}")
    assert 300 < pointer.stat().st_size < 1024
    with pytest.raises(CheckpointError, match="tokenizer/tokenizer.json, vae/diffusion_pytorch_model.safetensors are"):
        locate_sources(root)


def test_check_says_it_in_one_problem(clone):
    (problem,) = [finding.line() for finding in check_setup(clone).problems]
    assert problem.startswith(f"problem  {clone}: {', '.join(POINTED)} are Git LFS pointers") and FIX in problem


def test_a_pointer_given_as_a_weights_file_or_gguf_is_named(tiny, tmp_path, no_network):
    pointer = lfs_pointer(tmp_path / "vae.safetensors", 253_815_318)
    with pytest.raises(LFSPointerError, match=r"vae.safetensors: a Git LFS pointer \(\d+ bytes of text\)"):
        read_header(pointer)
    with pytest.raises(CheckpointError) as error:
        locate_sources(tiny[0], weights={"vae": pointer})
    assert FIX in str(error.value) and "download it again" not in str(error.value)

    gguf = lfs_pointer(tmp_path / "motif-video-2b-Q4_K_M.gguf", 1_350_000_000)
    with pytest.raises(LFSPointerError, match="motif-video-2b-Q4_K_M.gguf: a Git LFS pointer"):
        read_gguf(gguf)
    # check says the problem and the Git LFS fix apart (not "download it again" or "make it again").
    for report in (check_setup(tiny[0], gguf=gguf), check_setup(tiny[0], weights={"vae": pointer})):
        (problem,) = [finding.line() for finding in report.problems]
        assert "a Git LFS pointer (" in problem and problem.split("; fix: ")[1] == LFS_FIX


def test_the_text_encoders_loaded_size_is_read_as_every_header_is(tiny, tmp_path):
    # `sizes.stored_bytes` (the text encoder's bytes in the memory plan) read the headers with safetensors' own
    # reader: a pointer was "cannot read ... (corrupt or truncated safetensors?)", with no Git LFS fix.
    import torch
    from safetensors.torch import load_file

    from motif_lite.sizes import stored_bytes

    files = sorted((tiny[0] / "text_encoder").glob("*.safetensors"))
    loaded = [t for file in files for t in load_file(file).values()]  # floats as they load in bf16, others as stored
    expected = sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in loaded)
    assert stored_bytes(files, torch.bfloat16) == expected
    pointer = lfs_pointer(tmp_path / "model.safetensors")
    with pytest.raises(LFSPointerError, match=r"model.safetensors: a Git LFS pointer \(\d+ bytes of text\)"):
        stored_bytes([pointer], torch.bfloat16)


def test_one_pointer_is_named_alone_and_one_a_gguf_replaces_is_no_problem(tiny, tmp_path, no_network):
    # One pointer is said in the singular; a run or check with a GGUF does not read the checkpoint's transformer
    # weights, so a pointer left there is no problem of either.
    root = shutil.copytree(tiny[0], tmp_path / "Motif-Video-2B")
    lfs_pointer(root / "vae/diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError) as error:
        locate_sources(root)
    assert str(error.value).startswith(f"{root}: vae/diffusion_pytorch_model.safetensors is a Git LFS pointer, not ")
    shutil.copy(tiny[0] / "vae/diffusion_pytorch_model.safetensors", root / "vae")
    lfs_pointer(root / "transformer/diffusion_pytorch_model.safetensors")
    assert [finding.line() for finding in check_setup(root, gguf=tiny[1]).problems] == []


@pytest.mark.parametrize("given", ["file", "clone"])
def test_the_quantizer_gives_a_pointer_the_git_lfs_fix_alone(clone, capsys, given):
    # It ended the Git LFS fix with "; download the file again", a second fix for the same file.
    from motif_lite.quantize.cli import main as quantize_main

    source = clone / "transformer" / "diffusion_pytorch_model.safetensors" if given == "file" else clone
    assert quantize_main([str(source), "-o", str(clone.parent / "out.gguf"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a Git LFS pointer (" in err and err.endswith(LFS_FIX), err
    assert "download the file again" not in err and not (clone.parent / "out.gguf").exists()
