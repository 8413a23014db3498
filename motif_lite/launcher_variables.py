"""The whole numbers a launcher gives the processes it starts in their environment: torchrun's WORLD_SIZE, RANK,
LOCAL_RANK and LOCAL_WORLD_SIZE, Slurm's SLURM_STEP_NUM_TASKS and SLURM_STEP_NUM_NODES.

The launchers only ever set whole numbers, so any other value was typed by a user (or left by another tool).
`launcher_number` refuses it with a one-line error naming the variable and its value: torchrun's variables decide
whether this process is one of a job's ranks, and a guess either way would run N copies of the same video or
wait for ranks that never come. An empty value counts as unset: `WORLD_SIZE= motif-lite run ...` is how a shell
clears a variable for one command, and no launcher sets one empty. `launcher_number_or_none` never raises, for
what must not fail itself (the prefix of the error message that reports a bad value) and for guards that only
apply inside a launcher's job (a value no launcher sets means this is not one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from motif_lite.errors import MotifLiteError


def launcher_number(
    name: str, default: int | None = None, smallest: int = 0, environ: Mapping[str, str] = os.environ
) -> int:
    """The whole number in variable `name` (at least `smallest`), else `default` where it is unset or empty; a
    `MotifLiteError` naming the variable and its value for anything else, or where it is unset without a
    default."""
    value = environ.get(name, "").strip()
    if not value:
        if default is None:
            raise MotifLiteError(f"{name} is not set, but torchrun sets it for each process it starts")
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < smallest:
        raise MotifLiteError(
            f"{name}={environ[name]!r} is not a whole number of at least {smallest}, as torchrun sets it: "
            f"unset it (unset {name}) or give a number"
        )
    return number


def launcher_number_or_none(name: str, smallest: int = 0, environ: Mapping[str, str] = os.environ) -> int | None:
    """The whole number in variable `name`, or None where it is unset, empty or anything else."""
    try:
        return launcher_number(name, None, smallest, environ)
    except MotifLiteError:
        return None


def torchrun_world(environ: Mapping[str, str] = os.environ) -> int:
    """How many processes this one's torchrun job has (WORLD_SIZE): 1 outside torchrun."""
    return launcher_number("WORLD_SIZE", 1, smallest=1, environ=environ)


# torchrun's variables that make a process one of a job's ranks (`torchrun_world`, `rank_prefix`, `parallel.start`).
RANK_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@contextmanager
def one_process() -> Iterator[None]:
    """A rank of a torchrun job that works alone (rank 0 of `run --resume` of a finished sampling, the other ranks
    gone) runs as a command of one process: torchrun's `RANK_VARIABLES` set aside while it does, put back after."""
    kept = {name: os.environ.pop(name) for name in RANK_VARIABLES if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(kept)


def run_processes(gpus: int | None) -> int:
    """How many processes a run is on: under torchrun, its job's (WORLD_SIZE: torchrun started them, and --gpus is
    not used); else `gpus` (--gpus N, whose launcher starts them), 1 without."""
    world = torchrun_world()
    return world if world > 1 else gpus or 1


def job_ranks() -> int:
    """How many processes this one's torchrun job has: 1 outside torchrun, and where WORLD_SIZE is malformed (the
    command refuses it; its error is printed whole, as a single process's)."""
    return launcher_number_or_none("WORLD_SIZE", smallest=1) or 1


def rank_prefix() -> str:
    """The "[rank r] " prefix of messages in a process of a torchrun job (several ranks), else nothing. It never
    fails: it also prefixes the error that says WORLD_SIZE or RANK is malformed."""
    if job_ranks() == 1:
        return ""
    rank = launcher_number_or_none("RANK")
    return f"[rank {'?' if rank is None else rank}] "
