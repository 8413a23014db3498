"""The model a stopped run was sampled with, as its latents file keeps it (`SavedLatents.run`): its model flags,
and each weight file's size and modification time (`file_stamps`); and the notes a resumed run prints when its
model differs from that one (`other_model_notes`, `changed_file_notes`).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path

from motif_lite.paths import user_path
from motif_lite.units import file_size
from motif_lite.weights.lora_values import lora_totals

# The model flags (`motif-lite run`'s dests) a stopped run keeps in `SavedLatents.run`, grouped where one flag of a
# group replaces the others (a transformer from --gguf, or from --diffusion-model and --quantize; a text encoder from
# --text-encoder-gguf, or from --text-encoder and --text-encoder-quantize).
MODEL_FLAG_GROUPS = (
    ("model",), ("gguf", "diffusion_model", "quantize"), ("text_encoder_gguf", "text_encoder", "text_encoder_quantize"),
    ("vae",), ("dtype",), ("lora",), ("attention",),
)  # fmt: skip


def other_model_notes(then: dict | None, now: dict, sampled_with: str) -> list[str]:
    """The notes on a resumed run whose model differs from the stopped run's: one per group of model flags
    (MODEL_FLAG_GROUPS) in which `now` differs from `then` (`SavedLatents.run`), naming the flags as the stopped run
    had them. `sampled_with` says what samples the rest ("what this command gives"). A group that either leaves out
    (an older file, a pipeline without its checkpoint's sources) is not compared."""
    if then is None:  # denoised latents: no model samples them any more
        return []
    return [
        f"the run being resumed had {model_flags_text({dest: then[dest] for dest in group})}: the rest of the video "
        f"is sampled with {sampled_with}"
        for group in MODEL_FLAG_GROUPS
        if all(dest in then and dest in now for dest in group)
        and any(_compared(dest, then[dest]) != _compared(dest, now[dest]) for dest in group)
    ]


def _compared(dest: str, value: object) -> object:
    """A model flag's value as a resumed run compares it: the LoRAs as each file's total strength, by resolved path
    (`lora_totals`), so that `--lora x.safetensors` typed again matches the `/abs/x.safetensors:1` the file keeps."""
    return lora_totals(value or [], _resolved_lora_file) if dest == "lora" else value


def _resolved_lora_file(file: str) -> str:
    """The LoRA file that `file` (a --lora value's file part) names, resolved as the run read it (a folder stands
    for its one file, `~` is the home folder); `file` as it is where that is refused (said where LoRAs are read)."""
    from motif_lite.weights.lora_errors import LoRAError
    from motif_lite.weights.lora_specs import LoRASpec

    try:
        return str(LoRASpec.parse(file).path.resolve())
    except LoRAError:
        return file


# The model flags that name one weight file each, stamped beside the LoRAs' (`file_stamps`); -m is left out: a folder
# or a Hub repo id, whose files change one by one.
_FILE_FLAGS = ("gguf", "diffusion_model", "text_encoder_gguf", "text_encoder", "vae")


def model_files(flags: dict) -> list[Path]:
    """The weight files that model flags (`SavedLatents.run`'s, or a command line's) name, absolute: each of
    --gguf, --diffusion-model, --text-encoder-gguf, --text-encoder and --vae given, and each LoRA's."""
    from motif_lite.weights.lora_errors import LoRAError
    from motif_lite.weights.lora_specs import LoRASpec

    files = [user_path(flags[dest]).absolute() for dest in _FILE_FLAGS if flags.get(dest)]
    for item in flags.get("lora") or []:
        with contextlib.suppress(LoRAError):  # refused, with why, where the LoRAs are read
            files.append(LoRASpec.parse(item).path.absolute())
    return files


def file_stamps(flags: dict) -> dict[str, dict[str, int]]:
    """Each weight file of `flags` (`model_files`) by its path, with its size and modification time: what a resumed
    run compares to tell a file changed in place (`changed_file_notes`); cheap, where a checksum of gigabytes
    is not."""
    return {str(path): _stamp(path) for path in model_files(flags) if path.is_file()}


def _stamp(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def changed_file_notes(then: dict | None, now: dict) -> list[str]:
    """The notes on the weight files of `now` (model flags) that have another size or modification time than the
    stopped run's of the same path (`then`: `SavedLatents.run`, its "file_stamps"), as a LoRA retrained since: the
    user may mean it, but the rest of the video is another model's. An older file without stamps: none."""
    stamps = (then or {}).get("file_stamps")
    if not isinstance(stamps, dict):
        return []
    notes = []
    for path in model_files(now):
        old = stamps.get(str(path))
        if not isinstance(old, dict) or not path.is_file() or (new := _stamp(path)) == old:
            continue
        notes.append(f"{path} changed since the run stopped ({_change(old, new)}): the rest of the video is sampled "
                     "with the file as it is now")  # fmt: skip
    return notes


def _change(old: dict, new: dict[str, int]) -> str:
    """How a file changed: "2.1 kB then, 2.3 kB now; modified 2026-12-02 18:40:12"."""
    same = old.get("size") == new["size"]
    size = "the same size" if same else f"{_sized(old.get('size'))} then, {file_size(new['size'])} now"
    modified = datetime.fromtimestamp(new["mtime_ns"] / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    return f"{size}; modified {modified}"


def _sized(nbytes: object) -> str:
    return file_size(nbytes) if isinstance(nbytes, int) else "another size"


def model_flags_text(values: dict) -> str:
    """A group of model flags as a run had them ("--gguf tr-Q8_0.gguf", "--lora a:1 --lora b:0.5"), or the flags it
    left out ("no --gguf, --diffusion-model or --quantize"): the note names the flag either way."""
    flags = {dest: "--" + dest.replace("_", "-") for dest in values}
    given = [
        " ".join(f"{flags[dest]} {item}" for item in value) if isinstance(value, list) else f"{flags[dest]} {value}"
        for dest, value in values.items()
        if value not in (None, [])
    ]
    if given:
        return ", ".join(given)
    *first, last = flags.values()
    return "no " + (f"{', '.join(first)} or {last}" if first else last)
