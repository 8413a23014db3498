"""A run on a shared cluster under Slurm: the scheduler's warning before its time limit (`--signal=USR1@120`)
keeps the run's state as SIGTERM does, a signal that arrives twice (Slurm signals every process of a job, torch's
launcher passes it on to the ranks) does not stop the save, and `--gpus N`'s launcher passes the warning on to its
ranks. Tiny checkpoint, CPU."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.io.latents import read_latents
from motif_lite.io.latents_saving import LatentsFile
from motif_lite.runtime import launcher as runtime_launcher

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")

SIZE = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4", "--dtype", "fp32", "-s", "3"]


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def run_cli(checkpoint, output, capsys) -> tuple[int, str]:
    args = ["run", "-m", str(checkpoint), "-p", "a red fox", *SIZE, "-o", str(output)]
    code = cli.main([*args, "--device", "cpu", "--kernels", "torch", "--yes"])
    return code, capsys.readouterr().err


def signal_at_step(monkeypatch, signum: int, step: int = 2) -> None:
    """`signum` to this process as sampling step `step` finishes."""

    def send(self, stage, done, total):
        if stage == "denoise" and done == step:
            signal.raise_signal(signum)

    monkeypatch.setattr("motif_lite.progress.ProgressBars.__call__", send)


@pytest.mark.parametrize("name", ["SIGUSR1", "SIGUSR2"])
def test_the_schedulers_warning_keeps_the_state_and_exits_with_its_code(
    checkpoint, tmp_path, capsys, monkeypatch, name
):
    # Without a handler SIGUSR1 killed the run where it stood: the steps since the last periodic save were lost.
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    signal_at_step(monkeypatch, signum)
    code, err = run_cli(checkpoint, tmp_path / "fox.mp4", capsys)
    assert code == 128 + signum and f"terminated ({name})" in err, err
    assert read_latents(tmp_path / "fox.latents.safetensors").progress == (2, 4)
    assert signal.getsignal(signum) is before


def test_a_stop_signal_sent_again_while_the_state_is_saved_does_not_stop_the_save(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # Under Slurm with --gpus N each rank gets SIGTERM from Slurm and again from torch's launcher, moments apart.
    # The second one interrupted the save as a second Ctrl-C does, and nothing was kept.
    save = LatentsFile.save

    def signalled_again(self, saved):
        signal.raise_signal(signal.SIGTERM)
        return save(self, saved)

    monkeypatch.setattr(LatentsFile, "save", signalled_again)
    signal_at_step(monkeypatch, signal.SIGTERM)
    code, err = run_cli(checkpoint, tmp_path / "fox.mp4", capsys)
    assert code == 128 + signal.SIGTERM and "stopped the save" not in err, err
    assert read_latents(tmp_path / "fox.latents.safetensors").progress == (2, 4)


class Agent:
    """Stands in for torch's LocalElasticAgent, which starts the ranks: it records the signals the launcher was
    told to handle, as the process context reads them when it starts the ranks, then stops as on SIGUSR1."""

    seen: list[str] = []

    def __init__(self, **kwargs):
        pass

    def run(self):
        from torch.distributed.elastic.multiprocessing.api import SignalException

        Agent.seen.append(os.environ[runtime_launcher.TORCHELASTIC_SIGNALS])
        raise SignalException("got SIGUSR1", sigval=signal.SIGUSR1)

    def get_event_failed(self):
        return None


@pytest.fixture
def agent(monkeypatch):
    """torch's launcher as it is (its arguments, its config) up to the agent that would start the ranks."""
    import torch.distributed.launcher.api as launcher

    monkeypatch.setattr(launcher, "LocalElasticAgent", Agent)
    monkeypatch.setattr(launcher.events, "record", lambda *args, **kwargs: None)
    for name in (runtime_launcher.TORCHELASTIC_SIGNALS, runtime_launcher.TORCHRUN_SIGNALS):
        monkeypatch.delenv(name, raising=False)
    Agent.seen = []
    return Agent


def test_the_launcher_passes_the_schedulers_warning_on_to_its_ranks(agent):
    # torch's launcher handles SIGTERM, SIGINT, SIGHUP and SIGQUIT by default: SIGUSR1 killed it and left the ranks
    # running. Told to handle it, it raises SignalException and passes the signal on to the ranks. The real
    # launcher runs here up to its agent: torch 2.13's writes its --signals-to-handle (torch's default list unless
    # told) over the variable, which alone had set nothing.
    assert runtime_launcher.launch(2, ["run", "-p", "fox"]) == 128 + signal.SIGUSR1  # as one process exits
    assert set(agent.seen[0].split(",")) == {"SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"}
    for name in (runtime_launcher.TORCHELASTIC_SIGNALS, runtime_launcher.TORCHRUN_SIGNALS):
        assert name not in os.environ  # the launcher's environment is left as it was


def test_signals_the_user_chose_for_the_launcher_are_kept(agent, monkeypatch):
    monkeypatch.setenv(runtime_launcher.TORCHELASTIC_SIGNALS, "SIGTERM,SIGUSR1")
    runtime_launcher.launch(2, ["run", "-p", "fox"])
    assert agent.seen == ["SIGTERM,SIGUSR1"] and os.environ[runtime_launcher.TORCHELASTIC_SIGNALS] == "SIGTERM,SIGUSR1"


def test_an_attention_choice_that_cannot_be_kept_is_said_once_with_where_to_keep_it(tmp_path, caplog):
    # A read-only home on a compute node: each run timed the kernels again, and could choose another (other bits
    # for the same seed), without a word.
    from motif_lite.runtime.attention_choices import RememberedChoices

    blocked = tmp_path / "file"
    blocked.write_text("")  # the cache's folder is a file: nothing can be written there, also by root
    memory = RememberedChoices("env", blocked / "choices.json")
    memory.put("joint", "cudnn")
    memory.put("cross", "sdpa")
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and f"could not be kept in {blocked / 'choices.json'}" in said[0]
    assert "set XDG_CACHE_HOME to a folder you can write" in said[0]


def test_a_resumed_runs_file_that_cannot_be_deleted_leaves_the_finished_run_alone(tmp_path, caplog):
    # `run --resume` of a file in a read-only folder (a copy on a shared disk) wrote the video, then ended in a
    # traceback and exit code 1 when it deleted the file. A folder in its place cannot be unlinked, also by root.
    undeletable = tmp_path / "fox.latents.safetensors"
    undeletable.mkdir()
    LatentsFile(tmp_path / "fox.mp4", path=undeletable).remove()
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1 and f"the video is written, but {undeletable} could not be deleted" in said[0]
    LatentsFile(tmp_path / "fox.mp4", path=tmp_path / "deleted by hand.safetensors").remove()  # gone: nothing to say
    assert len(caplog.records) == 1
