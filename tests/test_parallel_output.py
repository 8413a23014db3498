"""What `motif-lite run --gpus 2 --device cpu` (gloo) shows its user: each warning once for the whole command, one
decode bar that counts the whole decode, every rank's bands, not rank 0's share of it, and a summary whose peak
memory says it is rank 0's.

One launched run (about 10-30 s on a loaded 2-core machine) on a tiny checkpoint whose VAE config has a key the
runtime does not know, which every process that reads it warns about."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from motif_lite.cli import EXIT_USER_ERROR
from motif_lite.cli import main as cli_main
from motif_lite.vae.config import WanVAEConfig

PROCESS_TIMEOUT = 240  # seconds for the launcher and its 2 processes on a loaded 2-core machine
UNKNOWN_KEY = "a_key_of_a_later_vae"
SIZE = ("-W", "80", "-H", "32", "--video-frames", "5", "--steps", "2")  # latents 2 x 4 x 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny official-layout checkpoint (2 attention heads) whose VAE config holds `UNKNOWN_KEY`."""
    pytest.importorskip("diffusers")
    from tiny_pipeline import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("unknown_vae_key")
    make_tiny_checkpoint(root)
    config_file = root / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, UNKNOWN_KEY: 1}))
    return root


def run_args(checkpoint: Path, output: Path, *extra: str) -> list[str]:
    return ["run", "-m", str(checkpoint), "--device", "cpu", "--dtype", "fp32", "-p", "a red fox", "-s", "0",
            *SIZE, "-o", str(output), *extra]  # fmt: skip


def warned(text: str) -> int:
    return text.count(f"ignoring unknown VAE config keys ['{UNKNOWN_KEY}']")


@pytest.fixture(scope="module")
def launched(checkpoint, tmp_path_factory) -> subprocess.CompletedProcess:
    """`motif-lite run --gpus 2 --device cpu` as a user runs it; its stderr is a pipe, so the bars are lines."""
    output = tmp_path_factory.mktemp("launched") / "fox.mp4"
    preview = ("--preview", str(output.with_name("preview.webp")), "--preview-every", "1")
    command = [sys.executable, "-m", "motif_lite", *run_args(checkpoint, output, "--gpus", "2", *preview)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert output.exists()
    return done


def test_a_checkpoint_config_warning_is_said_once_by_the_launched_command(launched):
    # Before: the launcher said it as it read the config for its checks, then rank 0 said it again.
    assert warned(launched.stdout + launched.stderr) == 1, launched.stderr


def test_a_refusal_before_the_processes_start_still_says_the_warning_once(checkpoint, tmp_path, capsys):
    # Without guidance 3 processes would share the tokens, but 3 does not divide the 2 heads: no rank starts to
    # say the warning, so the launcher does, before its refusal.
    extra = ("--gpus", "3", "--cfg-scale", "0")
    assert cli_main(run_args(checkpoint, tmp_path / "fox.mp4", *extra)) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert warned(err) == 1 and err.index(UNKNOWN_KEY) < err.index("error: 3 processes cannot split this run")


def test_rank_0s_decode_bar_counts_the_bands_of_every_rank(launched, checkpoint):
    # Each of the 2 ranks decodes one band (the CPU's plan: 1 band per rank) of every latent frame. Before, rank 0's
    # bar counted its own band alone: half the decode, shown as all of it.
    config = json.loads((checkpoint / "vae" / "config.json").read_text())
    vae = WanVAEConfig.from_dict({key: value for key, value in config.items() if key != UNKNOWN_KEY})
    latent_frames = vae.latent_shape(int(SIZE[1]), int(SIZE[3]), int(SIZE[5]))[2]
    counts = re.findall(r"decode:.*?\| *(\d+)/(\d+) ", launched.stderr)
    assert counts, launched.stderr
    assert {int(total) for _, total in counts} == {2 * latent_frames}, launched.stderr
    assert int(counts[-1][0]) == 2 * latent_frames  # and it ends full


def test_the_summarys_peak_memory_is_said_to_be_rank_0s(launched):
    # Rank 0 prints the summary with its own process's peak: under 2 processes "peak memory: RSS 0.47 GiB" read as
    # the run's, which held about twice that on this machine.
    memory = [line for line in launched.stdout.splitlines() if line.startswith("peak memory")]
    assert len(memory) == 1 and memory[0].startswith("peak memory of rank 0: RSS "), launched.stdout


def test_a_preview_of_several_processes_is_written_by_rank_0_alone(launched):
    # Rank 0 writes the preview. Before, the other ranks were given --preview-every without a preview to write,
    # which the pipeline refuses: rank 1 ended in that error and the launcher stopped the run.
    preview = Path(launched.args[launched.args.index("--preview") + 1])
    assert preview.stat().st_size > 0
    assert "[rank 1]" not in launched.stderr, launched.stderr
