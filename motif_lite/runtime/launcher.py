"""The launcher of a parallel run on one machine: `launch` starts the ranks through torch's elastic launcher (what
`torchrun --standalone` runs), passes the schedulers' signals on to them, and sums up how they ended (the rank that
failed first, the others that failed too or were stopped); `gpu_readings` reads the GPUs before they start, for the
launcher to plan each rank's run. The ranks' own side of the run is runtime/parallel.py.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from motif_lite.runtime.parallel import EXIT_LOST_CONTACT
from motif_lite.stopping import STOP_SIGNALS

if TYPE_CHECKING:  # the launcher's classes, imported as it starts (`launch`)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from motif_lite.gpu_memory import GpuReading

TORCHELASTIC_SIGNALS = "TORCHELASTIC_SIGNALS_TO_HANDLE"  # the signals torch's launcher stops its processes on
# torchrun's --signals-to-handle (newer torch), which takes its default from this variable and then writes its value
# over TORCHELASTIC_SIGNALS_TO_HANDLE: without it, torch's default list replaced ours
TORCHRUN_SIGNALS = "PET_SIGNALS_TO_HANDLE"
# torch's default, and the schedulers' warnings before a time limit (which Windows has not)
LAUNCHER_SIGNALS = ",".join(
    name for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


def _signal_name(signum: int) -> str:
    """`signum` as a user reads it: 'stopped by SIGINT'."""
    try:
        return f"stopped by {signal.Signals(signum).name}"
    except ValueError:
        return f"stopped by signal {signum}"


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run `python -m motif_lite *argv` in `nproc` processes on this machine through torch's elastic launcher
    (`torchrun --standalone --nproc-per-node nproc`); it stops every rank as soon as one fails. Returns the
    exit code of the first rank that failed (0 when all succeeded)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun gives each process 1 CPU thread unless OMP_NUM_THREADS is set (and warns about it): the CPU work of a
    # rank (the text encoder on the CPU, a --device cpu run) would then crawl. Share the CPUs out instead.
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or str(max(1, _cpus() // nproc))
    # The launcher logs a failed process as "E... failed (exitcode: 2) local_rank: 0 (pid: ...) of binary: ...";
    # the rank has said what went wrong and the line below says which one failed.
    failures = logging.getLogger("torch.distributed.elastic.multiprocessing.api")
    level = failures.level
    failures.setLevel(logging.CRITICAL)
    # On Ctrl-C its agent logs "W1205 23:19:10.169000 7650 torch/distributed/elastic/agent/server/api.py:753]
    # Received 2 death signal, shutting down workers": the ranks say "interrupted", as one process does.
    agent = logging.getLogger("torch.distributed.elastic.agent.server.api")
    agent_level = agent.level
    agent.setLevel(logging.ERROR)
    # The launcher passes the signals it handles on to the ranks; by default not SIGUSR1/2, which would kill it and
    # leave the ranks running: a scheduler's warning before its time limit must reach them, to keep their state.
    handled, flag = os.environ.get(TORCHELASTIC_SIGNALS), os.environ.get(TORCHRUN_SIGNALS)
    os.environ[TORCHELASTIC_SIGNALS] = handled or LAUNCHER_SIGNALS
    os.environ[TORCHRUN_SIGNALS] = flag or os.environ[TORCHELASTIC_SIGNALS]
    try:
        run(parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "motif_lite", *argv]))
    except ChildFailedError as exc:
        rank, failure = _first_failure(exc)
        # A rank killed by signal N (the launcher's exit code -N; a rank ends itself by SIGINT on Ctrl-C): the
        # 128 + N a shell reports for a process that signal stopped.
        code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
        said = f"rank {rank} failed ({_how_it_ended(failure.exitcode)}){_killed_note(failure.exitcode)}"
        print(f"error: {said}; {_the_others(exc, rank, nproc)}", file=sys.stderr)
        return code
    except SignalException as exc:  # passed on to the ranks, which kept their work: exit as one process does
        return 128 + exc.sigval
    finally:
        failures.setLevel(level)
        agent.setLevel(agent_level)
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
        if handled is None:  # the launcher may have written over it: as it was
            os.environ.pop(TORCHELASTIC_SIGNALS, None)
        else:
            os.environ[TORCHELASTIC_SIGNALS] = handled
        if flag is None:
            del os.environ[TORCHRUN_SIGNALS]
    return 0


# The exit statuses of a rank that handled a signal and ended with 128 + its number (`Terminated`; Ctrl-C where a
# process cannot end by SIGINT itself): its signal, which the launcher's line names.
_HANDLED_SIGNALS = {128 + signum: signum for signum in (signal.SIGINT, *STOP_SIGNALS)}
# How a rank that the launcher stopped after another's failure ends: killed by its SIGTERM, exited with 143 after
# handling it (`Terminated`), or ended on the lost-contact error as its peer vanished. None had an error of its own.
_STOPPED_BY_THE_LAUNCHER = (-signal.SIGTERM, 128 + signal.SIGTERM, EXIT_LOST_CONTACT)


def _how_it_ended(exit_code: int) -> str:
    """A rank's exit code as the launcher's line says it: 'exit code 2', or the signal that stopped it (killed by
    it, the launcher's -N, or handled, 128 + N): 'stopped by SIGTERM'."""
    if exit_code < 0:
        return _signal_name(-exit_code)
    if exit_code in _HANDLED_SIGNALS:
        return _signal_name(_HANDLED_SIGNALS[exit_code])
    return f"exit code {exit_code}"


def _first_failure(exc: ChildFailedError) -> tuple[int, ProcessFailure]:
    """The rank whose failure ended the run: the earliest the launcher saw (torch's `get_first_failure`), and within
    that time (whole seconds) a rank a signal killed before a rank that ended by itself, and that before one the
    launcher stopped (`_STOPPED_BY_THE_LAUNCHER`): a rank killed outright (SIGKILL) leaves its peers to fail with a
    lost-contact error at once, and where the launcher sees both in one look it lists the survivor first. Ties then
    go to the rank the launcher saw first (its failures are in the order it saw them: the stopped ranks after the
    one that failed), and among those tied that ended with the same exit code to the lowest: ranks that all failed
    on their own (a damaged file each reads) said the same error, and rank 0 said it whole."""

    def order(failure: ProcessFailure) -> tuple[int, int]:
        code = failure.exitcode
        cause = 2 if code in _STOPPED_BY_THE_LAUNCHER else 0 if code < 0 else 1
        return failure.timestamp, cause

    earliest = min(order(failure) for failure in exc.failures.values())
    tied = [(rank, failure) for rank, failure in exc.failures.items() if order(failure) == earliest]
    seen_first = tied[0][1].exitcode
    return min((item for item in tied if item[1].exitcode == seen_first), key=lambda item: item[0])


def _the_others(exc: ChildFailedError, first: int, nproc: int) -> str:
    """What became of the ranks other than the one that failed `first`: those that failed as well (a broken weights
    file every rank reads, which each of them has said), and those the launcher stopped (`_STOPPED_BY_THE_LAUNCHER`,
    or still running when it looked). "The other ranks were stopped" alone said of ranks that had each failed on
    their own."""
    too = sorted(
        r for r, failure in exc.failures.items() if r != first and failure.exitcode not in _STOPPED_BY_THE_LAUNCHER
    )
    if not too:
        return "the other ranks were stopped"
    named = f"rank {too[0]}" if len(too) == 1 else f"ranks {', '.join(map(str, too[:-1]))} and {too[-1]}"
    stopped = nproc - 1 - len(too)
    return f"{named} failed too" + (", the other ranks were stopped" if stopped > 0 else "")


def _killed_note(exit_code: int) -> str:
    """What a rank killed outright by SIGKILL (exit code -9) most likely met, after its signal's name: it printed
    nothing itself, and the other ranks' errors (a connection reset by their lost peer) do not say why it died.
    SIGKILL is most often the kernel's out-of-memory killer: the N processes together need about N times one
    process's host memory."""
    if exit_code != -getattr(signal, "SIGKILL", 0):
        return ""
    return (
        ", as the kernel's out-of-memory killer does when the processes together exhaust the host memory (dmesg "
        "says; a dry run adds up what they need)"
    )


# Run in a child process by `gpu_readings`: each device's facts and memory, as a rank would read them (devices.py).
_READ_GPUS = (
    "import json, sys\n"
    "from motif_lite.gpu_memory import read_gpus\n"
    "print(json.dumps([gpu.to_json() for gpu in read_gpus(int(sys.argv[1]))]))"
)


# How long the launcher waits for the child that reads the GPUs (it takes a few seconds): a hung driver would
# otherwise hold the command without a word. Past it, the ranks plan for themselves, and the launcher says so.
READ_GPUS_TIMEOUT_S = 60


def gpu_readings(count: int) -> list[GpuReading] | None:
    """The first `count` CUDA devices, each read once (`gpu_memory.GpuReading`: what the GPU is, its free and total
    memory), for the launcher to plan each rank's run on its own GPU; None where they cannot be read (no CUDA).

    Read in a short child process, which exits before the ranks start: CUDA's context in the launcher would hold a
    few hundred MiB of cuda:0 for the whole run, taking it from rank 0. torch's own NVML queries of the memory need
    the pynvml package, not one of its dependencies, and NVML numbers the GPUs otherwise than CUDA does
    (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES); the child reads them as the ranks will. It costs the child's start,
    importing torch and starting CUDA: a few seconds."""
    from motif_lite.errors import ConfigError
    from motif_lite.gpu_memory import GpuReading

    try:
        done = subprocess.run(
            [sys.executable, "-c", _READ_GPUS, str(count)],
            capture_output=True,
            text=True,
            timeout=READ_GPUS_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            return None
        read = json.loads(done.stdout.strip().splitlines()[-1])  # the last line: CUDA may print warnings first
        readings = [GpuReading.from_json(gpu) for gpu in read] if isinstance(read, list) else []
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, TypeError, ConfigError):
        return None
    return readings if len(readings) == count else None


def _cpus() -> int:
    """The CPUs this process may run on (its affinity, where the OS says), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1
