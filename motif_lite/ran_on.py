"""Where a video was made (`ran_on`): the device, GPU, software versions and kernels of the run, as a video's file
and a run's latents file store it beside the settings: the machine that sampled the last step, with the one that
sampled the first (`started_on`) or decoded it (`decoded_on`) nested where it is another. The pipeline's layer and
`decoding` both write it, so it lives below both. A record of the machine, not a setting: `--settings-from`
and `--resume` take nothing from it, but a note says when it names another device, torch or CUDA than this run's
(or another Triton, where both ran Triton's kernels), whose frames may then differ from the file's in their last
bits (docs/usage.md, "On a GPU, and on another machine")."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from motif_lite.version import VERSION

RAN_ON_KEY = "ran_on"  # the stored settings' key that holds the record
# What a note compares: the device kind ("cuda", "cpu") and name, and the versions that change how it rounds.
_COMPARED = ("device", "device_name", "torch", "cuda", "rocm")
# Triton's version builds the kernels, so it changes the frames only where both runs ran Triton's kernels.
TRITON_KERNELS = "triton"


def without_ran_on(stored: dict) -> dict:
    """A file's stored settings less `ran_on`, the record of the machine that made it (`RunRecords._ran_on`): no
    setting, so not compared where a rerun asks whether a file holds its video already."""
    return {key: value for key, value in stored.items() if key != RAN_ON_KEY}


def _piece(read: Callable[[], Any]) -> Any:
    """`read()`, or None where it fails: a record never fails a run, it leaves the piece out."""
    try:
        return read()
    except Exception:  # a driver that answers nothing, a triton that fails at import: left out of the record
        return None


def _triton_version() -> str | None:
    return str(importlib.import_module("triton").__version__)


def _gpu_entries(device: torch.device) -> dict[str, Any]:
    """The GPU's name and NVIDIA compute capability (AMD's architecture name instead, on a ROCm build)."""
    if device.type != "cuda":
        return {}
    entries = {"device_name": _piece(lambda: torch.cuda.get_device_name(device))}
    if torch.version.hip is not None:  # a ROCm build's capability is no NVIDIA one (gpus.py)
        entries["gpu_arch"] = _piece(lambda: torch.cuda.get_device_properties(device).gcnArchName.split(":")[0])
    else:
        entries["compute_capability"] = _piece(lambda: "{}.{}".format(*torch.cuda.get_device_capability(device)))
    return entries


def ran_on_record(device: torch.device | str, kernels: str | None = None, processes: int = 1) -> dict[str, Any]:
    """The record of where a run made its video on `device`: {"device": "cuda", "device_name": "NVIDIA H200",
    "compute_capability": "9.0", "torch": ..., "cuda": ..., "triton": ..., "motif_lite": ..., "kernels": "triton",
    "processes": 1}; "rocm" for a ROCm build's version, "gpu_arch" for its GPU. `kernels`: "triton" or "torch", the
    kernels the transformer ran; `processes`: how many ran it (--gpus N). A piece that cannot be read is left out:
    the record never fails a run."""
    device = torch.device(device)
    record: dict[str, Any] = {"device": device.type, **_gpu_entries(device), "torch": torch.__version__}
    record["cuda"] = _piece(lambda: torch.version.cuda)
    record["rocm"] = _piece(lambda: torch.version.hip)
    record["triton"] = _piece(_triton_version)
    record.update(motif_lite=VERSION, kernels=kernels, processes=processes)
    return {key: value for key, value in record.items() if value is not None}


# The machines that did part of a video's work where it is not the one that sampled its last step (`ran_on` itself):
# the one that sampled its first step (a resumed run), the others that sampled steps between them (a run resumed more
# than once, a list in the order they first sampled), and the one that decoded it (`motif-lite decode`, or --resume
# of a finished sampling). Each a record of its own, with no entries nested in it.
STARTED_ON = "started_on"
ALSO_SAMPLED_ON = "also_sampled_on"
DECODED_ON = "decoded_on"
_NESTED = (STARTED_ON, ALSO_SAMPLED_ON, DECODED_ON)


def _machine(record: dict[str, Any]) -> dict[str, Any]:
    """A record less the entries of other machines nested in it."""
    return {key: value for key, value in record.items() if key not in _NESTED}


def resumed_record(before: object, here: dict[str, Any]) -> dict[str, Any]:
    """The `ran_on` of a resumed run that sampled the rest of a video on the machine `here` (`ran_on_record`), from
    a file whose `ran_on` is `before`: `here`, with `started_on`, the record of the machine that sampled the first
    step (the file's own `started_on`, else the file's record), where it is not `here`'s (one piece differs), and
    `also_sampled_on`, every other machine that sampled steps between them (the file's machine too, where it is
    neither: A, then B, then C, or A, then B, then A again, name B). A file from before `ran_on` was stored (no
    record in `before`): `here` alone."""
    if not isinstance(before, dict):
        return here
    machine = _machine(here)
    first = before.get(STARTED_ON) if isinstance(before.get(STARTED_ON), dict) else _machine(before)
    listed = before.get(ALSO_SAMPLED_ON)
    between = [record for record in listed if isinstance(record, dict)] if isinstance(listed, list) else []
    others: list[dict[str, Any]] = []
    for record in [*between, _machine(before)]:  # each named once, and neither the first nor this one
        if record not in (first, machine) and record not in others:
            others.append(record)
    return {
        **here,
        **({} if first == machine else {STARTED_ON: first}),
        **({ALSO_SAMPLED_ON: others} if others else {}),
    }


def decoded_record(sampled: object, device: torch.device | str) -> object:
    """The `ran_on` of a video decoded on `device` from latents whose sampling is done, whose `ran_on` is
    `sampled`: `sampled` (the machine that sampled the last step), with `decoded_on`, this machine's record (no
    kernels or processes: the VAE alone decodes, in one process), where one of its pieces differs from `sampled`'s.
    A file from before `ran_on` was stored (no record): `sampled` as it is, no record."""
    if not isinstance(sampled, dict):
        return sampled
    decoder = {key: value for key, value in ran_on_record(device).items() if key != "processes"}
    kept = {key: value for key, value in sampled.items() if key != DECODED_ON}  # an earlier decode's, that failed
    if all(sampled.get(key) == value for key, value in decoder.items()):
        return kept
    return {**kept, DECODED_ON: decoder}


def decoded_metadata(metadata: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The settings a video decoded on `device` stores, from the `metadata` its latents file keeps: its `ran_on`
    as `decoded_record` makes it (none where the file has none)."""
    if RAN_ON_KEY not in metadata:
        return metadata
    return {**metadata, RAN_ON_KEY: decoded_record(metadata[RAN_ON_KEY], device)}


def kernels_a_run_runs(backend: str, device: torch.device) -> str:
    """ "triton" or "torch": the kernels a run with `--kernels backend` on `device` (one of this machine's) runs its
    transformer with, as its record will say unless they fall back while it runs (`RunRecords._kernels_used`)."""
    from motif_lite.runtime.kernels import triton_unavailable

    if device.type != "cuda" or backend == "torch":
        return "torch"
    # "triton" runs them or is refused before the run; "auto" runs them unless Triton cannot (an AMD GPU's default).
    return "torch" if backend == "auto" and triton_unavailable(backend, device) is not None else TRITON_KERNELS


def _described(record: dict[str, Any], triton: bool = False) -> str:
    """A record as a note names it: "cuda (NVIDIA H200), torch 2.5.1, CUDA 12.4", and ", Triton 3.2.0" where
    `triton` (its version is compared)."""
    device = str(record.get("device", "an unknown device"))
    if record.get("device_name") is not None:
        device += f" ({record['device_name']})"
    named = (("torch", "torch"), ("cuda", "CUDA"), ("rocm", "ROCm"), *((("triton", "Triton"),) if triton else ()))
    versions = [f"{name} {record[key]}" for key, name in named if record.get(key) is not None]
    return ", ".join([device, *versions])


def other_machine_note(
    file_name: str, stored: object, device: torch.device | str, kernels: str | None = None
) -> str | None:
    """The note for a file made on another machine than this run's on `device`: its stored `ran_on` (None or no
    record in a file from before it was stored: no note) names another device kind or GPU, torch, CUDA or ROCm, or
    another Triton where the file's run and this one (`kernels`, `kernels_a_run_runs`; None: not known, a dry run
    for another machine's GPU) both run Triton's kernels. A GPU's name is compared where both records have one (a
    dry run may plan for a GPU that is not here)."""
    if not isinstance(stored, dict):
        return None
    here = ran_on_record(device, kernels)
    triton = stored.get("kernels") == here.get("kernels") == TRITON_KERNELS
    differ = [
        key
        for key in (*_COMPARED, *(("triton",) if triton else ()))
        if stored.get(key) != here.get(key) and not (key == "device_name" and None in (stored.get(key), here.get(key)))
    ]
    if not differ:
        return None
    reasons = "another GPU, torch, CUDA or Triton" if triton else "another GPU, torch or CUDA"
    return (
        f"{file_name} was made on {_described(stored, triton)}; this run is on {_described(here, triton)}: its "
        f"frames may differ from the file's in their last bits ({reasons} rounds otherwise; docs/usage.md, \"On a "
        'GPU, and on another machine")'
    )
