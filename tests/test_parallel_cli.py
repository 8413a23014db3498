"""`motif-lite run --gpus N` / `--sp` / `--comm-timeout` before any process starts: every mistake is named once, by
the command itself, instead of by each of N processes after they started; the launcher's environment; the plan a
parallel dry run prints. No process is started here (the launcher is replaced), and no checkpoint is needed: the
official architecture's built-in configs stand in (12 attention heads)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from motif_lite import cli
from motif_lite.errors import MotifLiteError
from motif_lite.runtime import launcher, parallel
from motif_lite.runtime.parallel import ParallelError
from motif_lite.stopping import Terminated


@pytest.fixture
def no_launch(monkeypatch):
    """Fails the test if the processes would be started."""

    def forbidden(nproc, argv):
        raise AssertionError(f"started {nproc} processes for a command that should have been refused")

    monkeypatch.setattr(launcher, "launch", forbidden)


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["run", "--device", "cpu", "--steps", "2", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), 'a prompt is required: -p "what the video shows"'),
        (("-p", "fox", "--preview-every", "2"), "--preview-every says how often the --preview file is rewritten"),
        (("-p", "fox", "--lora", "missing.safetensors"), "LoRA file not found: missing.safetensors"),
        (("-p", "fox", "--step-cache", "0.05"), "--step-cache is not supported in a parallel run"),
        (("-p", "fox", "--preview", "p.avi"), "p.avi"),
        (("-p", "fox", "-o", "fox.gif", "--crf", "20"), "crf has no meaning for a .gif output"),
    ],
)
def test_gpus_refuses_what_every_process_would_refuse(capsys, tmp_path, monkeypatch, no_launch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, "--gpus", "2", *argv)
    assert code == cli.EXIT_USER_ERROR and message in err, err
    assert "[rank" not in err and err.count("error:") == 1


def test_several_srun_tasks_on_a_node_are_refused_and_one_per_node_is_not(capsys, monkeypatch, no_launch):
    # `srun --ntasks=2 motif-lite run --gpus 2` started two launchers on the same GPUs, writing the same output.
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "1")
    code, err = run(capsys, "--gpus", "2", "-p", "fox")
    assert (
        code == cli.EXIT_USER_ERROR
        and "srun started 2 copies of this command on 1 node (SLURM_STEP_NUM_TASKS=2)" in err
    )
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "2")  # one per node: torchrun-like, each node its own GPUs
    started = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: started.append(nproc) or 0)
    assert run(capsys, "--gpus", "2", "-p", "fox")[0] == 0 and started == [2]


def test_slurm_variables_that_are_not_counts_refuse_nothing(monkeypatch):
    # Outside a plain job step (a heterogeneous job, a variable emptied by a wrapper) the counts cannot be read:
    # --gpus is not refused for what cannot be told, nor does it fail with a ValueError.
    from motif_lite.cli.launch import srun_copies

    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "1")
    for tasks in ("", "2,1"):
        monkeypatch.setenv("SLURM_STEP_NUM_TASKS", tasks)
        assert srun_copies() is None


def test_a_device_no_rank_can_use_is_refused_before_the_gpus_are_counted(capsys, monkeypatch, no_launch):
    # On a machine with 2 GPUs the processes would start and each would refuse cuda:1.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    code = cli.main(["run", "-p", "fox", "--gpus", "2", "--device", "cuda:1"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "--device cuda:1: in a parallel run rank r uses cuda:LOCAL_RANK" in err


@pytest.mark.parametrize(
    ("found", "advice"),
    [
        (0, "this machine has no CUDA device: add --device cpu to run the 4 processes on the CPU (slow, for testing)"),
        (1, "this machine has only 1 CUDA device: add --device cpu to run the 4 processes on the CPU"),
        (3, "this machine has only 3 CUDA devices: give --gpus 3 or fewer, or add --device cpu to run the 4 processes"),
    ],
)
def test_more_gpus_than_the_machine_has_says_what_to_do_and_a_dry_run_notes_it(
    capsys, monkeypatch, no_launch, found, advice
):
    # Before: "this machine has 0 CUDA device(s) (--device cpu: CPU processes)", and a dry run that printed the
    # layout without a word of the refusal.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: found)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the dry run plans for the CPU, as without GPUs
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    argv = ["run", "-p", "fox", "--gpus", "4", "-W", "256", "-H", "256", "--video-frames", "9", "--steps", "2"]
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"error: --gpus 4 starts 4 processes, one per GPU, but {advice}" in err
    assert cli.main([*argv, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "note: a run of this command would be refused here: --gpus 4 starts 4 processes, one per GPU, but" in err
    assert advice in err
    assert cli.main([*argv, "--dry-run", "--device", "cpu"]) == 0
    assert "would be refused" not in capsys.readouterr().err
    from motif_lite.cli.launch import missing_gpus

    # As many GPUs as asked for, or one process (which starts no others), is no refusal.
    assert missing_gpus(1, "auto") is None
    assert found < 2 or missing_gpus(found, "auto") is None


def test_sp_without_gpus_says_how_many_processes(capsys):
    code, err = run(capsys, "-p", "fox", "--dry-run", "--sp", "2")
    assert code == cli.EXIT_USER_ERROR
    assert "--sp 2 shares the video tokens among 2 processes, but this run has 1: run it on 2 or 4" in err


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_comm_timeout_must_be_a_positive_number_of_seconds(capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", "--gpus", "2", "--comm-timeout", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--comm-timeout: must be a number of seconds > 0, got {value}" in err


def test_comm_timeout_in_a_single_process_is_said_to_do_nothing(capsys):
    code, err = run(capsys, "--dry-run", "-W", "256", "-H", "256", "--video-frames", "9", "--comm-timeout", "30")
    assert code == 0 and "note: --comm-timeout is for a run on several processes (--gpus N, torchrun)" in err
    code, err = run(capsys, "--dry-run", "-W", "256", "-H", "256", "--video-frames", "9")
    assert code == 0 and "--comm-timeout" not in err


def test_batch_guidance_on_several_processes_is_said_to_do_nothing(capsys):
    flags = ["--dry-run", "-W", "256", "-H", "256", "--video-frames", "9", "--device", "cpu", "--gpus", "2"]
    code, err = run(capsys, *flags, "--batch-guidance")
    assert code == 0 and "note: --batch-guidance is not used on several processes" in err
    assert "does not fit the memory plan" not in err  # a rank's plan has one row per forward: not a refusal
    code, err = run(capsys, *flags)
    assert code == 0 and "--batch-guidance" not in err
    code, err = run(capsys, *flags[:-2], "--batch-guidance")  # one process: it batches the two predictions
    assert code == 0 and "--batch-guidance" not in err


def test_batch_guidance_on_sequence_parallel_ranks_is_not_said_to_run_side_by_side(capsys):
    # --sp 2 on 2 processes is cfg 1: the note said the predictions ran "side by side on their own processes".
    flags = ["--dry-run", "-W", "256", "-H", "256", "--video-frames", "9", "--device", "cpu", "--gpus", "2"]
    code, err = run(capsys, *flags, "--sp", "2", "--batch-guidance")
    note = "note: --batch-guidance is not used on several processes (cfg 1 x sp 2 on 2 ranks): every prediction is "
    assert code == 0 and note in err and "side by side" not in err
    code, err = run(capsys, *flags, "--batch-guidance")
    assert "(cfg 2 x sp 1 on 2 ranks): the two guidance predictions run side by side" in err


def test_the_plan_of_a_parallel_run_has_one_row_per_forward(capsys):
    # cfg 2 x sp 1 runs the two guidance predictions on two ranks, one call each: a plan of two rows per forward
    # (batched guidance, what one GPU does) would print twice the activations.
    flags = ["run", "--dry-run", "--device", "cuda", "--vram", "40", "-W", "256", "-H", "256", "--video-frames", "9"]
    assert cli.main(flags) == 0
    assert "2 rows per transformer forward" in capsys.readouterr().out  # one GPU, guided: batched
    assert cli.main([*flags, "--gpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "cfg 2 x sp 1 on 2 ranks; per rank:" in out and "1 row per transformer forward" in out


def test_the_launcher_shares_the_cpus_among_the_processes(monkeypatch):
    # torchrun alone gives each process one thread (and warns): a rank's CPU work (the text encoder on the CPU)
    # would crawl. A value the user set is kept, and the launcher's own environment is left as it was.
    import torch.distributed.run as torchrun

    seen = []
    monkeypatch.setattr(torchrun, "run", lambda config: seen.append(os.environ.get("OMP_NUM_THREADS")))
    monkeypatch.setattr(launcher, "_cpus", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert launcher.launch(4, ["run", "-p", "fox"]) == 0
    assert launcher.launch(32, ["run", "-p", "fox"]) == 0
    assert seen == ["4", "1"] and "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launcher.launch(4, ["run", "-p", "fox"]) == 0
    assert seen[-1] == "3"


def test_the_launcher_leaves_saying_which_rank_failed_to_the_command(monkeypatch, capsys):
    # torch's launcher logs its own "E... failed (exitcode: 2) local_rank: 0 (pid: ...) of binary: ..." line, next
    # to the rank's error and the command's line: silenced while it runs, and only then.
    import logging

    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    launcher_log = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    logged = []

    def failing(config):
        logged.append(launcher_log.isEnabledFor(logging.ERROR))
        raise ChildFailedError("motif_lite", {0: ProcessFailure(local_rank=0, pid=1, exitcode=2, error_file="")})

    monkeypatch.setattr(torchrun, "run", failing)
    assert launcher.launch(2, ["run", "-p", "fox"]) == 2
    assert "error: rank 0 failed (exit code 2); the other ranks were stopped" in capsys.readouterr().err
    assert logged == [False] and launcher_log.isEnabledFor(logging.ERROR)


@pytest.mark.parametrize(
    ("nproc", "exit_codes", "said"),
    [
        # A broken weights file every rank reads: each rank failed on its own and said so; none was stopped.
        (2, {0: 2, 1: 2}, "error: rank 0 failed (exit code 2); rank 1 failed too\n"),
        (2, {1: 2, 0: 2}, "error: rank 0 failed (exit code 2); rank 1 failed too\n"),  # as the launcher lists them
        (4, {0: 2, 1: 2, 3: 2}, "error: rank 0 failed (exit code 2); ranks 1 and 3 failed too, the other ranks were"),
        (4, {0: 2, 2: 2, 1: -15, 3: -15}, "error: rank 0 failed (exit code 2); rank 2 failed too, the other ranks"),
        (2, {0: 2, 1: -15}, "error: rank 0 failed (exit code 2); the other ranks were stopped\n"),  # by the launcher
    ],
)
def test_the_launcher_says_which_other_ranks_failed_and_which_it_stopped(monkeypatch, capsys, nproc, exit_codes, said):
    # Was "rank 0 failed (exit code 2); the other ranks were stopped" under every rank's own error.
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failing(config):
        failures = {
            r: ProcessFailure(local_rank=r, pid=1, exitcode=code, error_file="") for r, code in exit_codes.items()
        }
        for failure in failures.values():  # seen by the launcher in the same second
            failure.timestamp = 1765000000
        raise ChildFailedError("motif_lite", failures)

    monkeypatch.setattr(torchrun, "run", failing)
    assert launcher.launch(nproc, ["run", "-p", "fox"]) == 2
    assert said in capsys.readouterr().err


# How torch's launcher reports a rank it stopped itself, in the order it saw them: killed by its SIGTERM (-15),
# exited with 143 after handling it (`Terminated`), or ended on the lost-contact error (`EXIT_LOST_CONTACT`).
STOPPED = (-15, 143, parallel.EXIT_LOST_CONTACT)


@pytest.mark.parametrize(
    ("nproc", "exit_codes", "status", "said"),
    [
        # One rank raised (or was killed) and the launcher stopped the other: the other was said to have "failed too".
        *[(2, {1: 1, 0: stopped}, 1, "error: rank 1 failed (exit code 1); the other ranks were stopped\n")
          for stopped in STOPPED],
        (2, {1: -9, 0: parallel.EXIT_LOST_CONTACT}, 137, "the host memory (dmesg says; a dry run adds up what they "
         "need); the other ranks were stopped\n"),
        (4, {2: 2, 0: 2, 1: 143, 3: parallel.EXIT_LOST_CONTACT}, 2,
         "error: rank 0 failed (exit code 2); rank 2 failed too, the other ranks were stopped\n"),
        # A rank stopped alone by a signal it handled (`kill` of rank 1's pid): the launcher names the signal, as
        # the rank (which says nothing, rank 0 speaks for a stopped job) does not. It was "exit code 143".
        (2, {1: 143, 0: parallel.EXIT_LOST_CONTACT}, 143,
         "error: rank 1 failed (stopped by SIGTERM); the other ranks were stopped\n"),
        (2, {1: 129, 0: 143}, 129, "error: rank 1 failed (stopped by SIGHUP); the other ranks were stopped\n"),
    ],
)  # fmt: skip
def test_the_ranks_the_launcher_stopped_are_said_to_be_stopped_not_failed(
    monkeypatch, capsys, nproc, exit_codes, status, said
):
    # All seen in the same second, listed as torch lists them: the rank that failed first, the ones it stopped after.
    # The tie went to the lowest rank: "rank 0 failed (exit code 143); rank 1 failed too", and the command exited 143.
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failing(config):
        failures = {r: ProcessFailure(local_rank=r, pid=1, exitcode=c, error_file="") for r, c in exit_codes.items()}
        for failure in failures.values():
            failure.timestamp = 1765000000
        raise ChildFailedError("motif_lite", failures)

    monkeypatch.setattr(torchrun, "run", failing)
    assert launcher.launch(nproc, ["run", "-p", "fox"]) == status
    assert capsys.readouterr().err.endswith(said)


@pytest.mark.parametrize(
    ("exitcode", "status", "said"), [(-2, 130, "stopped by SIGINT"), (-9, 137, "stopped by SIGKILL")]
)
def test_a_rank_a_signal_stopped_gives_the_status_a_shell_reports(monkeypatch, capsys, exitcode, status, said):
    # A rank ends itself by SIGINT on Ctrl-C (as Python does), which the launcher reports as exit code -2: the
    # command's status is then 130, as for one process, not a generic 1.
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failing(config):
        raise ChildFailedError("motif_lite", {1: ProcessFailure(local_rank=1, pid=1, exitcode=exitcode, error_file="")})

    monkeypatch.setattr(torchrun, "run", failing)
    assert launcher.launch(2, ["run", "-p", "fox"]) == status
    err = capsys.readouterr().err  # after SIGKILL's, a note on the out-of-memory killer (the test below)
    assert f"error: rank 1 failed ({said})" in err and "; the other ranks were stopped" in err


def test_a_vram_budget_is_left_to_the_processes_when_the_checkpoint_is_not_at_hand(capsys, monkeypatch, tmp_path):
    # Each process downloads the checkpoint and plans with its files; planned here, the built-in sizes of the
    # official model would stand in for a checkpoint that may be another size.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # empty: nothing is at hand
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    code, err = run(capsys, "-p", "fox", "-m", "someone/motif-video-finetune", "--gpus", "2", "--vram", "0.0001")
    assert code == 0 and launched == [2], err


def test_a_vram_no_plan_fits_is_refused_before_launch_from_the_official_configs(
    capsys, monkeypatch, tmp_path, no_launch
):
    # The launcher planned only with the checkpoint at hand: with an empty cache each of the N processes downloaded
    # it (10+ GB), then refused. The official model's configs are bundled: refused once, before anything starts.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # empty: nothing is at hand
    code, err = run(capsys, "-p", "fox", "--gpus", "2", "--vram", "0.0001")
    assert code == cli.EXIT_USER_ERROR and "1280x736x121 needs at least" in err and "[rank" not in err, err
    code, err = run(capsys, "-p", "fox", "--gpus", "2", "--vram", "0.0001", "--gguf", "Q4_K_M")  # a variant too
    assert code == cli.EXIT_USER_ERROR and "1280x736x121 needs at least" in err, err


def test_a_lora_of_other_shapes_is_refused_before_launch_from_the_official_configs(
    capsys, monkeypatch, tmp_path, no_launch
):
    # With the checkpoint not at hand the launcher left the LoRAs to the processes: each downloaded the checkpoint
    # (10+ GB), then refused. Now checked once against the official configs, as a run checks them before its download.
    from safetensors.torch import save_file

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # empty: nothing is at hand
    module = "transformer.transformer_blocks.0.attn.to_q"  # named as the official layer, shaped as another model's
    lora = tmp_path / "other.safetensors"
    save_file({f"{module}.lora_A.weight": torch.ones(2, 64), f"{module}.lora_B.weight": torch.ones(64, 2)}, lora)
    code, err = run(capsys, "-p", "fox", "--gpus", "2", "--lora", str(lora))
    assert code == cli.EXIT_USER_ERROR and "LoRA shapes for transformer_blocks.0.attn.to_q" in err, err
    assert err.startswith("error: ") and err.count("error:") == 1  # said once, by the launcher


def test_the_launcher_counts_the_cpus_this_process_may_use(monkeypatch):
    # In a container or under taskset a process may use fewer CPUs than the machine has; macOS has no such limit.
    import torch.distributed.run as torchrun

    seen = []
    monkeypatch.setattr(torchrun, "run", lambda config: seen.append(os.environ["OMP_NUM_THREADS"]))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert launcher.launch(2, ["run", "-p", "fox"]) == 0
    monkeypatch.delattr(os, "sched_getaffinity")
    assert launcher.launch(2, ["run", "-p", "fox"]) == 0
    assert seen == ["2", "32"]


def test_a_process_of_torchrun_refuses_a_device_of_its_own(monkeypatch):
    # `torchrun --nproc-per-node 2 -m motif_lite run --device cuda:1`: each process uses cuda:LOCAL_RANK.
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    with pytest.raises(ParallelError, match="--device cuda:1: in a parallel run rank r uses cuda:LOCAL_RANK"):
        parallel.start("cuda:1")


def test_torchrun_on_a_machine_without_gpus_asks_for_device_cpu_as_gpus_n_does(monkeypatch):
    # `torchrun --nproc-per-node 2 -m motif_lite run ...` without --device ran both processes on the CPU without a
    # word (no time estimate either: that is a single process's), where `run --gpus 2` refuses.
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(parallel.dist, "init_process_group", lambda *args, **kwargs: None)  # joined: not refused
    with pytest.raises(ParallelError, match="^torchrun started 2 processes, one per GPU, but this machine has no CUDA"):
        parallel.start("auto")
    assert parallel.start("cpu").device == torch.device("cpu")


def _as_rank(monkeypatch, rank: str | None, world: str | None) -> None:
    """This process as torchrun's rank `rank` of `world` (None: no torchrun variable)."""
    for name, value in (("RANK", rank), ("WORLD_SIZE", world)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("rank", "world", "whole"), [("0", "2", True), ("1", "2", False), (None, None, True)])
def test_only_rank_0_prints_a_user_error_whole(monkeypatch, capsys, rank, world, whole):
    # Every rank of `--gpus N` plans alike: without this each printed the same refusal with its plan table.
    from motif_lite.cli import run as run_cli
    from motif_lite.errors import MotifLiteError

    def refuse(args):
        raise MotifLiteError("80x32x5 needs at least 1.00 GiB of device memory\nMemory plan for 80x32x5: ...")

    _as_rank(monkeypatch, rank, world)
    monkeypatch.setattr(run_cli, "main", refuse)
    assert cli.main(["run", "-p", "fox"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    prefix = "" if rank is None else f"[rank {rank}] "
    assert err.startswith(f"{prefix}error: 80x32x5 needs at least 1.00 GiB of device memory\n")
    assert ("Memory plan for 80x32x5" in err) == whole


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), Terminated(signal.SIGTERM)])
@pytest.mark.parametrize(("rank", "world", "said"), [("0", "2", True), ("1", "2", False), (None, None, True)])
def test_only_rank_0_says_that_the_job_was_stopped(monkeypatch, capsys, rank, world, said, stop):
    # Ctrl-C (or a scheduler's SIGTERM) reaches every rank of `--gpus N`: each said "[rank r] interrupted".
    from motif_lite.cli import run as run_cli

    def stopped(args):
        raise stop

    _as_rank(monkeypatch, rank, world)
    monkeypatch.setattr(run_cli, "main", stopped)
    code = cli.main(["run", "-p", "fox"])
    terminated = isinstance(stop, Terminated)
    assert code == (128 + signal.SIGTERM if terminated else cli.EXIT_INTERRUPTED)
    err = capsys.readouterr().err
    prefix = "" if rank is None else f"[rank {rank}] "
    word = "terminated" if terminated else "interrupted"
    assert (f"\n{prefix}{word}" in err) == said and (err == "") != said


def test_a_user_error_without_a_message_is_printed_by_every_rank(monkeypatch, capsys):
    # A rank other than 0 prints the first line of a message; an empty message has none, and is still a user error.
    from motif_lite.cli import run as run_cli
    from motif_lite.errors import MotifLiteError

    def refuse(args):
        raise MotifLiteError()

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(run_cli, "main", refuse)
    assert cli.main(["run", "-p", "fox"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == "[rank 1] error: \n"


@pytest.fixture
def no_process_group(monkeypatch):
    """Fails the test if this process would join a torchrun job's process group."""

    def forbidden(device):
        raise AssertionError("a dry run joined the process group")

    monkeypatch.setattr(parallel, "start", forbidden)


@pytest.mark.parametrize("device", ["cuda:1", "cpu"])
def test_a_dry_run_under_torchrun_is_printed_once_by_the_main_rank(capsys, monkeypatch, no_process_group, device):
    # Before: every rank joined the job and printed the same plan (the main rank's, text encoder and all).
    argv = ["run", "-p", "fox", "--dry-run", "--device", device, "-W", "256", "-H", "256", "--video-frames", "9"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert cli.main(argv) == 0
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    code = cli.main(argv)
    out, err = capsys.readouterr()
    if device == "cuda:1":  # what each rank of a run would refuse, a dry run refuses too
        assert code == cli.EXIT_USER_ERROR and "--device cuda:1: in a parallel run rank r uses cuda:LOCAL_RANK" in err
    else:
        assert code == 0 and out.count("cfg 2 x sp 1 on 2 ranks; per rank:") == 1


@pytest.fixture
def launched(monkeypatch) -> list[int]:
    """The process counts the launcher is asked to start (none started); no GPU memory is read."""
    counts: list[int] = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: counts.append(nproc) or 0)
    monkeypatch.setattr(launcher, "gpu_readings", lambda count: None)
    return counts


def test_gpus_all_starts_a_process_on_every_visible_gpu(capsys, monkeypatch, launched):
    small = ["-W", "256", "-H", "256", "--video-frames", "9"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # set, the messages name it (below)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert cli.main(["run", "-p", "fox", "--gpus", "all", *small]) == 0
    assert launched == [4]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert cli.main(["run", "-p", "fox", "--gpus", "ALL", *small]) == cli.EXIT_USER_ERROR
    assert "--gpus all: this machine has no CUDA device; --gpus N --device cpu runs N" in capsys.readouterr().err
    assert cli.main(["run", "-p", "fox", "--gpus", "all", "--device", "cpu", *small]) == cli.EXIT_USER_ERROR
    assert "give the number of CPU processes instead (--gpus 2)" in capsys.readouterr().err
    assert launched == [4]
    # An empty CUDA_VISIBLE_DEVICES hides every GPU: said, as the machine may well have some.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cli.main(["run", "-p", "fox", "--gpus", "all", *small]) == cli.EXIT_USER_ERROR
    assert "--gpus all: this machine has no CUDA device visible (CUDA_VISIBLE_DEVICES='');" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_gpus_that_is_no_count_names_all(capsys, value):
    # -1 is "every GPU" in PyTorch Lightning: here that is --gpus all.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", "--gpus", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"--gpus: must be a number of GPUs, 1 or more, or all (every GPU this process sees), got {value}" in err


def test_too_few_gpus_names_cuda_visible_devices_when_it_hides_some(capsys, monkeypatch, no_launch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert cli.main(["run", "-p", "fox", "--gpus", "2"]) == cli.EXIT_USER_ERROR
    assert "this machine has only 1 CUDA device visible (CUDA_VISIBLE_DEVICES='0'): add" in capsys.readouterr().err


def test_a_gpu_given_by_index_points_to_cuda_visible_devices(capsys, monkeypatch, no_launch):
    assert cli.main(["run", "-p", "fox", "--gpus", "2", "--device", "cuda:2"]) == cli.EXIT_USER_ERROR
    assert "choose the GPUs with CUDA_VISIBLE_DEVICES (CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2" in (
        capsys.readouterr().err
    )


CHOOSING = "one GPU is --device cuda:N; several are --gpus N, CUDA_VISIBLE_DEVICES choosing which"


@pytest.mark.parametrize(
    ("argv", "advice"),
    [
        (("--ulysses_degree", "2"), "Ulysses sequence parallel is --sp N here"),  # xDiT
        (("--ulysses_size", "2"), "Ulysses sequence parallel is --sp N here"),  # Wan2.1's generate.py
        (("--ring_degree", "2"), "ring attention is not offered: sequence parallel is Ulysses, --sp N"),
        (("--ring_size", "2"), "ring attention is not offered: sequence parallel is Ulysses, --sp N"),
        (("--use_cfg_parallel",), "guidance parallel is on by default"),
        (("--cfg_parallel",), "guidance parallel is on by default"),
        (("--dit_fsdp",), "weights are not sharded: every process loads the whole (2B) transformer"),
        (("--t5_fsdp",), "weights are not sharded: every process loads the whole (2B) transformer"),
        (("--nproc_per_node", "2"), "--gpus N starts N processes; torchrun's flags go before the command"),
        (("--world_size", "2"), "--gpus N starts N processes; torchrun's flags go before the command"),
        (("--devices", "2"), "several GPUs: --gpus N (one process each, CUDA_VISIBLE_DEVICES picks which)"),
        # diffusers' device_map, ComfyUI-MultiGPU, ComfyUI's --cuda-device, accelerate's --gpu_ids: these got
        # "did you mean --device?" or nothing
        (("--device_map", "balanced"), "one model is not split layer by layer over GPUs here: --gpus N runs N"),
        (("--multi-gpu",), "one model is not split layer by layer over GPUs here: --gpus N runs N"),
        (("--cuda-device", "1"), "one GPU is --device cuda:N; several are --gpus N, CUDA_VISIBLE_DEVICES choosing"),
        (("--gpu_ids", "0,1"), "one GPU is --device cuda:N; several are --gpus N, CUDA_VISIBLE_DEVICES choosing"),
        # the example in the user's own GPU numbers: it showed CUDA_VISIBLE_DEVICES=2,3 whatever they were
        (("--gpu_ids", "0,1"), f"{CHOOSING} (CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2 ...)"),
        (("--gpu-ids=cuda:4,cuda:5,cuda:6",), f"{CHOOSING} (CUDA_VISIBLE_DEVICES=4,5,6 motif-lite run --gpus 3 ...)"),
        (("--cuda-device", "1"), f"{CHOOSING} (--device cuda:1)"),
        (("--cuda-device",), f"{CHOOSING} (CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2 ...)"),  # no numbers
        (
            ("--devices", "0,1"),
            "several GPUs: --gpus N (one process each, CUDA_VISIBLE_DEVICES picks which): "
            "CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2 ...; one GPU",
        ),
    ],
)
def test_other_tools_multi_gpu_flags_say_what_to_use_here(capsys, argv, advice):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"unrecognized arguments: {' '.join(argv)} ({argv[0]}: {advice}" in err


def test_gpus_under_torchrun_that_differs_from_its_processes_is_noted(capsys, monkeypatch, no_process_group):
    # torchrun decides the processes; before, a --gpus 4 under torchrun --nproc-per-node 2 was silently ignored.
    argv = ["run", "-p", "fox", "--dry-run", "--device", "cpu", "-W", "256", "-H", "256", "--video-frames", "9"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for gpus, noted in (("4", True), ("2", False), ("all", False), (None, False)):
        assert cli.main([*argv, "--gpus", gpus] if gpus else argv) == 0
        err = capsys.readouterr().err
        note = "note: --gpus 4 is not used under torchrun, which started 2 processes: this run is on 2"
        assert (note in err) == noted and ("is not used under torchrun" in err) == noted and "note: None" not in err


@pytest.mark.parametrize("flag", ["--gpus", "--sp", "--GPUs"])
def test_serve_with_several_gpus_says_how_to_use_them(capsys, flag):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", flag, "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"({flag}: the server runs on one GPU; for several, start one server per GPU (motif-lite serve" in err


@pytest.mark.parametrize(("local", "here"), [(None, 4), ("2", 2)])
def test_a_parallel_dry_run_adds_up_the_host_memory_of_the_machines_processes(
    capsys, monkeypatch, no_process_group, local, here
):
    # Every process holds a transformer, only the first the text encoder too (8 GiB of the official one): each plan
    # alone would hide what N processes need of the machine. Under torchrun over 2 machines, LOCAL_WORLD_SIZE count.
    import re

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    if local is not None:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    argv = ["run", "-p", "fox", "--dry-run", "--device", "cpu", "-W", "256", "-H", "256", "--video-frames", "9"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    first = float(re.search(r"^host peak (\d+\.\d+) GiB RSS", out, re.M)[1])
    line = re.search(rf"^host, the {here} processes on this machine together: about (\S+) GiB RSS \(the first, with "
                     r"the text encoder, (\S+) GiB; each other (\S+) GiB\)$", out, re.M)  # fmt: skip
    total, main, other = (float(value) for value in line.groups())
    assert main == first and other < first - 7  # the others hold no text encoder
    assert abs(total - (main + (here - 1) * other)) <= 0.01 * here


@pytest.mark.parametrize("argv", [["check", "--gpus", "2"], ["run", "-p", "fox", "--GPUS", "2"]])
def test_gpus_where_the_server_is_not_meant_says_nothing_of_the_server(capsys, argv):
    # The server's advice belongs to serve: check has no --gpus at all, and run's is only spelled otherwise.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unrecognized arguments: " in err and "server" not in err


def test_each_rank_without_dtype_compares_its_default_with_the_others(monkeypatch):
    # Ranks on GPUs of two generations default to two dtypes (fp16 before compute capability 8.0) and would exchange
    # tensors of both: a run without --dtype has every rank compare its own GPU's default before anything loads;
    # with --dtype all ranks have the same and nothing is compared. (The comparison itself: tests/test_parallel.py.)
    from motif_lite.cli import run as run_command
    from motif_lite.dtypes import default_dtype

    compared = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(parallel, "start", lambda device: parallel.Session(0, 2, torch.device("cpu")))
    monkeypatch.setattr(parallel, "stop", lambda: None)
    monkeypatch.setattr(parallel, "check_same_dtype", compared.append)
    monkeypatch.setattr(run_command, "_run", lambda args, session=None: 0)  # nothing loads
    assert cli.main(["run", "-p", "fox", "--device", "cpu"]) == 0
    assert compared == [default_dtype(torch.device("cpu"))[0]]  # the default of the rank's own device
    assert cli.main(["run", "-p", "fox", "--device", "cpu", "--dtype", "fp32"]) == 0
    assert len(compared) == 1


DRY_RUN = ["run", "-p", "fox", "--dry-run", "--device", "cpu", "-W", "256", "-H", "256", "--video-frames", "9"]


@pytest.mark.parametrize("value", ["two", "0", "-2", "2.0"])
def test_a_malformed_world_size_is_one_line_naming_it(capsys, monkeypatch, no_process_group, value):
    # Before: `int(os.environ["WORLD_SIZE"])` ended the command with a ValueError traceback. The message has no
    # "[rank r] " prefix: the prefix reads WORLD_SIZE too, and must not fail in its turn.
    monkeypatch.setenv("WORLD_SIZE", value)
    monkeypatch.setenv("RANK", "1")
    assert cli.main(DRY_RUN) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"error: WORLD_SIZE={value!r} is not a whole number of at least 1, as torchrun sets it: unset it "
        "(unset WORLD_SIZE) or give a number\n"
    )


def test_an_empty_world_size_is_a_single_process(capsys, monkeypatch, no_process_group):
    # `WORLD_SIZE= motif-lite run ...` is how a shell clears the variable for one command: no launcher sets it empty.
    monkeypatch.setenv("WORLD_SIZE", "")
    monkeypatch.setenv("RANK", "x")  # read by no single process
    assert cli.main(DRY_RUN) == 0
    assert "on 2 ranks" not in capsys.readouterr().out


def test_a_malformed_rank_under_torchrun_is_one_line_naming_it(capsys, monkeypatch, no_process_group):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "first")
    assert cli.main(DRY_RUN) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("[rank ?] error: RANK='first' is not a whole number of at least 0")


@pytest.mark.parametrize(("name", "value"), [("RANK", "first"), ("LOCAL_RANK", ""), ("WORLD_SIZE", "x")])
def test_joining_the_job_reads_each_rank_variable_or_names_it(monkeypatch, name, value):
    for variable, number in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(variable, number)
    monkeypatch.setenv(name, value)
    with pytest.raises(MotifLiteError, match=f"^{name}(='{value}' is not a whole number| is not set)"):
        parallel.start("cpu")


def test_a_malformed_local_world_size_is_one_line_naming_it(capsys, monkeypatch, no_process_group):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "four")
    assert cli.main(DRY_RUN) == cli.EXIT_USER_ERROR
    assert capsys.readouterr() == ("", (
        "[rank 0] error: LOCAL_WORLD_SIZE='four' is not a whole number of at least 1, as torchrun sets it: "
        "unset it (unset LOCAL_WORLD_SIZE) or give a number\n"
    ))  # fmt: skip


@pytest.mark.parametrize("batch", [1, 2])
def test_gpus_claims_o_before_its_processes_start_and_frees_it_after(capsys, monkeypatch, tmp_path, batch):
    # Rank 0 claimed -o once every process had started: a second run writing it was refused only then. The launcher
    # now claims it (each of a batch's files) first, holds it while the processes run, and frees it after.
    import socket

    from motif_lite.io.output_claims import WRITING_PREFIX, claim_named_output, numbered_path, release_named_claims

    output = tmp_path / "fox.mp4"
    outputs = [output] if batch == 1 else [numbered_path(output, i) for i in (1, 2)]
    markers = [tmp_path / f"{WRITING_PREFIX}{o.name}" for o in outputs]
    held = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: held.append([m.read_text() for m in markers]) or 0)
    code, err = run(capsys, "-p", "fox", "--gpus", "2", "-o", str(output), "-b", str(batch))
    assert code == 0, err
    assert held == [[f"{os.getpid()} {socket.gethostname()}\n"] * batch]  # this process's claims, while they ran
    assert not any(m.exists() for m in markers)
    claim_named_output(outputs[-1])  # another run writing (the last of) them: refused before any process starts
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: pytest.fail("started the processes"))
    code, err = run(capsys, "-p", "fox", "--gpus", "2", "-o", str(output), "-b", str(batch))
    assert code == cli.EXIT_USER_ERROR and err.count("error:") == 1, err
    assert f"another run (process {os.getpid()}) is writing {outputs[-1]}: give this run another -o" in err
    assert [m.exists() for m in markers] == [False] * (batch - 1) + [True]  # the others' claims taken back
    release_named_claims(outputs)


def test_a_rank_takes_the_claim_of_the_launcher_that_started_it_as_its_own(tmp_path):
    # `run --gpus N` claims -o in the launcher; rank 0, its child process, writes the video under that claim. A
    # claim of any other running process still refuses it.
    import subprocess
    import sys

    from motif_lite.io.output_claims import WRITING_PREFIX, claim_named_output, release_named_claims

    output = tmp_path / "fox.mp4"
    claim = f"import pathlib, motif_lite.io.output_claims as v; v.claim_named_output(pathlib.Path({str(output)!r}))"
    rank = [sys.executable, "-c", claim]
    claim_named_output(output)  # this process as the launcher
    assert subprocess.run(rank, capture_output=True, text=True).returncode == 0
    marker = tmp_path / f"{WRITING_PREFIX}fox.mp4"
    assert marker.read_text().split()[0] == str(os.getpid())  # still the launcher's, which frees it
    release_named_claims([output])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        marker.write_text(f"{other.pid} {__import__('socket').gethostname()}\n")  # a sibling, not the parent
        refused = subprocess.run(rank, capture_output=True, text=True)
        assert refused.returncode != 0 and f"another run (process {other.pid})" in refused.stderr, refused.stderr
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    ("value", "meant"),
    [
        ("2,3", "CUDA_VISIBLE_DEVICES=2,3 motif-lite run --gpus 2"),
        ("0,1,2", "CUDA_VISIBLE_DEVICES=0,1,2 motif-lite run --gpus 3"),
        # torch's device names and a trailing comma: CUDA_VISIBLE_DEVICES=cuda:0,cuda:1 hides every GPU
        ("cuda:0,cuda:1", "CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2"),
        ("2,", "CUDA_VISIBLE_DEVICES=2 motif-lite run --gpus 1"),
        ("0, 1", "CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2"),
        # an input method's full-width digits: CUDA_VISIBLE_DEVICES='１,２' was quoted whole, and CUDA saw no GPU
        ("\uff11,\uff12", "CUDA_VISIBLE_DEVICES=1,2 motif-lite run --gpus 2"),
    ],
)
def test_gpus_given_as_a_list_of_gpus_says_how_to_choose_them(capsys, value, meant):
    # Users of device lists (accelerate's --gpu_ids 0,1) were told only that --gpus is a number.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", "--gpus", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--gpus: must be a number of GPUs, got the list {value}:" in err
    assert meant in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["a,b", "0,x", "\u00b9,\u00b2"])  # superscripts: digits int() does not read
def test_gpus_given_a_list_that_names_no_gpus_gets_no_command_that_hides_them(capsys, value):
    # `--gpus a,b` advised CUDA_VISIBLE_DEVICES=a,b, which hides every GPU: only GPU numbers make a list to choose.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", "--gpus", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "CUDA_VISIBLE_DEVICES" not in err, err
    assert f"--gpus: must be a number of GPUs, 1 or more, or all (every GPU this process sees), got {value}" in err


@pytest.mark.parametrize("value", ["CUDA:0,CUDA:1", "cuda:0,cuda:1"])
def test_gpus_given_device_names_in_capitals_counts_the_same_gpus(capsys, value):
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "fox", "--gpus", value])
    assert "CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda:\uff11", "gpu\uff11", "\uff11", "CUDA:\uff11", "cuda\uff11"])
def test_a_gpu_number_in_full_width_digits_is_said_in_the_digits_torch_takes(device):
    # `--device cuda:１` was told "--device cuda:１", the very name torch refuses.
    from motif_lite.devices import parse_device
    from motif_lite.errors import MotifLiteError

    with pytest.raises(MotifLiteError) as refused:
        parse_device(device)
    meant = re.search(r"--device (\S+)", str(refused.value))[1]
    assert meant == "cuda:1" and torch.device(meant).index == 1, refused.value


def test_a_device_list_says_that_several_gpus_are_several_processes(capsys, no_launch):
    # Was "unknown device 'cuda:0,cuda:1' (use auto, cpu, cuda or cuda:N)": nothing said how to use both.
    assert cli.main(["run", "-p", "fox", "--device", "cuda:0,cuda:1"]) == cli.EXIT_USER_ERROR
    said = capsys.readouterr().err.splitlines()[0]
    assert said.startswith("error: unknown device 'cuda:0,cuda:1': a process runs on one device; several GPUs are ")
    assert "one process each: motif-lite run --gpus N, and CUDA_VISIBLE_DEVICES chooses which" in said
    assert "(CUDA_VISIBLE_DEVICES=0,1 motif-lite run --gpus 2 ...; docs/parallel.md)" in said  # the user's GPUs


@pytest.mark.parametrize(
    ("exit_code", "said"),
    [
        (-9, "error: rank 1 failed (stopped by SIGKILL), as the kernel's out-of-memory killer does when the processes"),
        (-11, "error: rank 1 failed (stopped by SIGSEGV); the other ranks were stopped"),
        (3, "error: rank 1 failed (exit code 3); the other ranks were stopped"),
    ],
)
def test_a_rank_killed_by_sigkill_names_the_out_of_memory_killer(capsys, monkeypatch, exit_code, said):
    # A rank killed outright (the OOM killer) was "failed (exit code -9)", after the other rank's traceback of a
    # connection reset by its lost peer: nothing said what killed it.
    import torch.distributed.run as torch_run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failing(config) -> None:
        failure = ProcessFailure(local_rank=1, pid=1234, exitcode=exit_code, error_file="<N/A>")
        raise ChildFailedError("motif_lite", {1: failure})

    monkeypatch.setattr(torch_run, "run", failing)
    assert launcher.launch(2, ["run", "-p", "fox"]) == (exit_code if exit_code > 0 else 128 - exit_code)
    assert said in capsys.readouterr().err


GLOO_PEER_RESET = (
    "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:40075: Connection reset by "
    "peer. This is typically caused by a remote worker hanging or bugs in the application."
)


def raised_in_torch_distributed(failure: BaseException) -> None:
    """Raise `failure` from a frame whose file is in torch/distributed, as gloo's errors are: a dead peer's
    RuntimeError surfaces in the collective's Python wrapper (checked with two gloo processes, one killed)."""
    import torch.distributed as dist

    where = str(Path(dist.__file__).parent / "distributed_c10d.py")
    exec(compile("raise failure", where, "exec"), {"failure": failure})


@pytest.mark.parametrize(
    ("failure", "from_torch", "one_line"),
    [
        (RuntimeError(GLOO_PEER_RESET), True, True),
        (RuntimeError("a bug"), True, False),
        # The same words from elsewhere (hf_xet's "Data processing error: ... Connection reset by peer") are no
        # lost rank: they keep their traceback.
        (RuntimeError("Data processing error: CAS service error: Connection reset by peer"), False, False),
    ],
)
def test_a_rank_whose_peer_went_away_says_so_in_one_line(capsys, monkeypatch, failure, from_torch, one_line):
    # Rank 1 killed mid-run: rank 0 printed "[rank 0] failed: RuntimeError: ...Connection reset by peer" and a
    # traceback, as for a bug of its own. A real bug keeps its traceback.
    from motif_lite.cli import run as run_command

    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(parallel, "start", lambda device: parallel.Session(0, 2, torch.device("cpu")))
    monkeypatch.setattr(parallel, "stop", lambda: None)
    waited = []  # the lost-contact error waits for the peer's end (below), a bug's traceback does not
    monkeypatch.setattr(parallel, "wait_for_the_lost_peer", lambda: waited.append(True))

    def failing(args, session=None):
        if from_torch:
            raised_in_torch_distributed(failure)
        raise failure

    monkeypatch.setattr(run_command, "_run", failing)
    argv = ["run", "-p", "fox", "--device", "cpu", "--dtype", "fp32"]
    if not one_line:
        with pytest.raises(RuntimeError, match=str(failure)):
            cli.main(argv)
        assert f"[rank 0] failed: RuntimeError: {failure}" in capsys.readouterr().err and not waited
        return
    # its own exit status: the launcher counts it among the ranks it stopped, not among those that failed too
    assert cli.main(argv) == parallel.EXIT_LOST_CONTACT
    err = capsys.readouterr().err
    assert err.startswith("[rank 0] error: lost contact with another rank (it stopped, or the connection broke; ")
    assert "Connection reset by peer" in err and "failed:" not in err and err.count("\n") == 1
    assert waited == [True]


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="no pthread_kill on Windows")
def test_a_rank_that_lost_its_peer_waits_for_the_launcher_to_see_the_peer_end(monkeypatch):
    # CI: rank 1 raised, rank 0 (its peer gone) ended in the same moment, and the launcher named rank 0 ("rank 0
    # failed (exit code 2)"). Rank 0 now waits; the launcher's SIGTERM, once it has seen rank 1 end, ends the wait.
    import threading

    from motif_lite.stopping import signals_interrupt

    monkeypatch.setattr(parallel, "LOST_PEER_WAIT_SECONDS", 60.0)
    # The signal only while the handler is there (a timer started before it let a stall of this process over 0.5 s
    # end pytest itself by SIGTERM), and to the main thread, whose sleep it must end, as the launcher's ends a rank's.
    sigterm = threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGTERM))
    with signals_interrupt():
        start = time.monotonic()
        sigterm.start()
        try:
            parallel.wait_for_the_lost_peer()
            waited = time.monotonic() - start
        finally:
            sigterm.cancel()  # a wait that ended early: no SIGTERM after the handler is gone
    assert 0.4 < waited < 30


def test_a_rank_killed_outright_is_named_before_the_survivor_the_launcher_saw_fail_in_the_same_moment(
    capsys, monkeypatch
):
    # Rank 1 SIGKILLed; rank 0, its peer gone, failed at once with its lost-contact error. Where the launcher saw
    # both in one look (its times are whole seconds, its list in rank order), torch's first failure was rank 0:
    # "rank 0 failed (exit code 1)", exit status 1, and nothing named the rank that was killed.
    import torch.distributed.run as torch_run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def both_in_one_look(survivor: int, killed: int):
        def failing(config) -> None:
            failures = {0: ProcessFailure(0, 100, survivor, "<N/A>"), 1: ProcessFailure(1, 101, killed, "<N/A>")}
            for failure in failures.values():
                failure.timestamp = 1_700_000_000
            raise ChildFailedError("motif_lite", failures)

        return failing

    monkeypatch.setattr(torch_run, "run", both_in_one_look(1, -9))
    assert launcher.launch(2, ["run", "-p", "fox"]) == 137
    assert "error: rank 1 failed (stopped by SIGKILL), as the kernel's" in capsys.readouterr().err
    # The launcher's own SIGTERM to a survivor is no cause; two ranks that ended by themselves keep torch's order.
    monkeypatch.setattr(torch_run, "run", both_in_one_look(-15, 1))
    assert launcher.launch(2, ["run", "-p", "fox"]) == 1
    assert "error: rank 1 failed (exit code 1)" in capsys.readouterr().err
    monkeypatch.setattr(torch_run, "run", both_in_one_look(2, 1))
    assert launcher.launch(2, ["run", "-p", "fox"]) == 2
    assert "error: rank 0 failed (exit code 2)" in capsys.readouterr().err


def test_a_video_with_fewer_tokens_than_sequence_ranks_is_refused_before_anything_loads(
    capsys, tmp_path, monkeypatch, no_launch
):
    # Before: refused by every rank in its first denoising step, after the loads and the text encoding.
    monkeypatch.chdir(tmp_path)
    tiny = ("-p", "fox", "-W", "16", "-H", "16", "--video-frames", "1", "--sp", "2")  # 1 latent frame x 1 x 1
    code, err = run(capsys, "--gpus", "2", *tiny)
    assert code == cli.EXIT_USER_ERROR and err.count("error:") == 1, err
    assert "a 16x16 video of 1 frame has only 1 (latent frames x width / 16 x height / 16)" in err
    monkeypatch.setenv("WORLD_SIZE", "2")  # a rank under torchrun: its dry run refuses it as its run would
    monkeypatch.setenv("RANK", "0")
    code, err = run(capsys, *tiny, "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "has only 1 (latent frames" in err, err
    code, err = run(capsys, *tiny[:-2], "--dry-run")  # cfg 2 x sp 1: no tokens shared, nothing refused
    assert code == 0, err


def test_a_frame_count_that_rounds_to_too_few_tokens_is_refused_in_a_dry_run_too(
    capsys, tmp_path, monkeypatch, no_launch
):
    # A dry run (and a rank under torchrun) checks its request as given: 2 frames, no 4k+1, were not counted and let
    # through, though the run makes 1 frame of them (1 token for 2 ranks; 3 frames make 5, 2 tokens: taken).
    monkeypatch.chdir(tmp_path)
    tiny = ("-p", "fox", "-W", "16", "-H", "16", "--video-frames", "2", "--sp", "2", "--dry-run")
    code, err = run(capsys, "--gpus", "2", *tiny)
    assert code == cli.EXIT_USER_ERROR and "a 16x16 video of 1 frame has only 1 (latent frames" in err, err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, err = run(capsys, *tiny)
    assert code == cli.EXIT_USER_ERROR and "has only 1 (latent frames" in err, err


def test_a_video_with_as_many_tokens_as_sequence_ranks_is_taken(capsys, tmp_path, monkeypatch, no_launch):
    # Each rank needs one token at least (SequenceParallel refuses fewer): exactly one each is enough.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    two = ("-p", "fox", "-W", "32", "-H", "16", "--video-frames", "1", "--sp", "2")  # 1 latent frame x 2 x 1
    code, err = run(capsys, *two, "--dry-run")
    assert code == 0 and "has only" not in err, err


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
@pytest.mark.parametrize(("rank", "world", "shown"), [("0", "2", True), ("1", "2", False), (None, None, True)])
def test_only_rank_0_prints_the_warnings(monkeypatch, capsys, rank, world, shown):
    # Before: every rank printed each warning (an unknown key of the transformer's config.json: 5 times on 2 ranks).
    import logging
    import warnings

    from motif_lite.cli import run as run_cli

    def warn(args):
        warnings.warn("motif-lite: the Triton rms_norm falls back to torch", RuntimeWarning, stacklevel=1)
        logging.getLogger("motif_lite.pipeline").warning("negative prompt is 606 tokens")
        logging.getLogger("motif_lite.pipeline").error("an error every rank says")
        return 0

    _as_rank(monkeypatch, rank, world)
    monkeypatch.setattr(run_cli, "main", warn)
    assert cli.main(["run", "-p", "fox"]) == 0
    err = capsys.readouterr().err
    assert ("warning: the Triton rms_norm falls back to torch" in err) == shown, err
    assert ("warning: negative prompt is 606 tokens" in err) == shown, err
    assert "error: an error every rank says" in err


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_rank_0_prints_a_config_warning_once_though_a_quiet_pass_came_between_two_reads(monkeypatch, capsys):
    # Rank 0 of `--gpus 2` printed the transformer config's unknown keys twice: the quiet planning passes
    # (`catch_warnings` with a filter) make Python forget the warnings it showed, and the config is read again after.
    import warnings

    from motif_lite.cli import run as run_cli
    from motif_lite.config import TransformerConfig

    def read_twice(args):
        TransformerConfig.from_dict({"a_key_of_another_model": 1}, source="transformer/config.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
        TransformerConfig.from_dict({"a_key_of_another_model": 1}, source="transformer/config.json")
        return 0

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(run_cli, "main", read_twice)
    assert cli.main(["run", "-p", "fox"]) == 0
    err = capsys.readouterr().err
    assert err.count("ignoring unknown transformer config keys ['a_key_of_another_model']") == 1, err


@pytest.mark.parametrize("value", ["0,0", "1,01", "cuda:2,2"])
def test_gpus_given_a_list_that_names_a_gpu_twice_gets_no_command_that_hides_them(capsys, monkeypatch, value):
    # `--gpus 0,0` advised CUDA_VISIBLE_DEVICES=0,0 motif-lite run --gpus 2: with a number repeated CUDA sees no GPU
    # at all (as torch's reading of the variable, which follows CUDA's, says), so the command ran on none.
    numbers = [part.removeprefix("cuda:") for part in value.split(",")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(numbers))
    assert torch.cuda._parse_visible_devices() == []
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "fox", "--gpus", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "CUDA_VISIBLE_DEVICES" not in err, err


@pytest.mark.parametrize("value", ["\uff11\uff0c\uff12", "1\uff0c2", "\uff11\u3001\uff12"])
def test_a_gpu_list_with_an_input_methods_commas_is_read_as_the_same_list(capsys, value):
    # `--gpus １，２` (full-width comma) was told only that --gpus is a number, where `--gpus １,２` got the
    # command that runs on GPUs 1 and 2; a Japanese input method's comma key types `、`.
    from motif_lite.devices import parse_device

    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "fox", "--gpus", value])
    err = capsys.readouterr().err
    assert f"got the list {value}:" in err and "CUDA_VISIBLE_DEVICES=1,2 motif-lite run --gpus 2" in err, err
    with pytest.raises(MotifLiteError) as refused:
        parse_device(f"cuda:{value}")
    assert "(CUDA_VISIBLE_DEVICES=1,2 motif-lite run --gpus 2 ...; docs/parallel.md)" in str(refused.value)


@pytest.mark.parametrize(
    ("device", "why"),
    [
        ("cuda:\uff11", "a GPU's number is written in the digits 0-9"),
        ("CUDA:\uff12", "a GPU's number is written in the digits 0-9 and device names are lower case"),
    ],
)
def test_a_full_width_gpu_number_is_told_why_the_spelling_given_differs(device, why):
    # The suggestion alone (--device cuda:1 for cuda:１) looks the same as what was typed: the reason says what differs.
    from motif_lite.devices import parse_device
    from motif_lite.errors import MotifLiteError

    with pytest.raises(MotifLiteError) as refused:
        parse_device(device)
    assert f"unknown device {device!r}: {why}: " in str(refused.value), refused.value


def test_a_rank_refused_a_path_in_one_line_says_no_failed_line_before_it(capsys, monkeypatch):
    # A path too long for the file system (or under a folder this user may not enter) is one line from cli.main;
    # a rank of a parallel run printed "[rank 0] failed: OSError: ..." first, the line that stands for a bug's.
    import errno

    from motif_lite.cli import run as run_command

    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(parallel, "start", lambda device: parallel.Session(0, 2, torch.device("cpu")))
    monkeypatch.setattr(parallel, "stop", lambda: None)
    too_long = OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300 + ".mp4")

    def failing(args, session=None):
        raise too_long

    monkeypatch.setattr(run_command, "_run", failing)
    assert cli.main(["run", "-p", "fox", "--device", "cpu", "--dtype", "fp32"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"[rank 0] error: {cli.path_error_said(too_long)}\n", err
