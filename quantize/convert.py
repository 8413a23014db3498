"""Source checkpoint -> quantized GGUF, streamed one tensor (and, for large tensors, one slice of rows) at a time."""

import contextlib
import errno
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFWriter
from gguf import quants as gguf_quants
from tqdm import tqdm

from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError
from motif_lite.io.output_claims import unused_path
from motif_lite.io.staging import (
    free_bytes,
    out_of_space,
    output_folder_problem,
    replace_or_beside,
    unreachable_path,
)
from motif_lite.paths import make_folder_command, user_path, windows_name_problem, windows_path_problem
from motif_lite.shell_syntax import quoted
from motif_lite.units import file_size
from motif_lite.version import VERSION
from motif_lite.weights.gguf_file import QUANTIZE_TYPE_KEY, QUANTIZER_VERSION_KEY

from .components import TRANSFORMER, Component
from .recipes import Recipe, file_type, plan_bytes
from .sources import GGUFSource, SafetensorsSource
from .tensor import byte_shape, quantize_tensor
from .text_recipes import TextRecipe

try:
    import fcntl  # locks OUT.tmp (`_claim`)
except ImportError:  # Windows
    fcntl = None

# ggml's quantization format version (GGML_QNT_VERSION); llama.cpp writes it into every quantized file.
QUANT_VERSION = 2
# Values read, quantized and checked at a time (row slices): memory stays bounded even for the text encoder's token
# table (671 M values: 2.7 GB in float32, more with the quantizer's temporaries, if read whole).
CHUNK_VALUES = 1 << 24
# Room for the header (tensor infos, the embedded config) and the alignment padding, on top of the tensor data.
HEADER_ALLOWANCE = 1 << 20


class OutputError(MotifLiteError):
    """The output file cannot be written: no permission, a read-only or full disk."""


@dataclass
class _ErrorSums:
    err2: float = 0.0
    ref2: float = 0.0

    def add(self, ref: np.ndarray, approx: np.ndarray) -> None:
        self.err2 += float(np.square(approx - ref, dtype=np.float64).sum())
        self.ref2 += float(np.square(ref, dtype=np.float64).sum())

    @property
    def rel_rmse(self) -> float:
        return math.sqrt(self.err2 / self.ref2) if self.ref2 > 0 else 0.0


@dataclass
class Summary:
    """What `quantize_checkpoint` wrote: sizes, type counts and weight-space error per tensor class."""

    path: Path
    n_params: int = 0
    data_bytes: int = 0
    types: Counter = field(default_factory=Counter)
    errors: dict[str, _ErrorSums] = field(default_factory=dict)
    seconds: float = 0.0  # from the first tensor read to the file renamed into place
    from_gguf: bool = False  # the errors are then against the GGUF's values, whose own loss they do not count
    not_replaced: str | None = None  # why the -o asked for could not be replaced, when `path` is a name beside it

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.data_bytes / max(self.n_params, 1)

    def _error_heading(self) -> str:
        """Requantizing, the errors are measured against the GGUF read, not the original weights (a Q8_0 of a
        Q4_K file reads ~0.005 where its weights carry ~0.07): said, so that they are not taken for the whole."""
        against = ", against the source GGUF: its own loss from the original weights comes on top"
        return f"relative RMSE per tensor class (weight space{against if self.from_gguf else ''}):"

    def lines(self) -> list[str]:
        size = self.path.stat().st_size if self.path.exists() else self.data_bytes
        out = [
            f"wrote {self.path} ({file_size(size)}, {self.n_params:,} weights, "  # GB as the docs' recipe sizes
            f"{self.bits_per_weight:.2f} bits/weight) in {duration(self.seconds)}",
            "tensor types: " + ", ".join(f"{name} x{n}" for name, n in self.types.most_common()),
            self._error_heading(),
        ]
        out += [f"  {cls:<16} {sums.rel_rmse:.4f}" for cls, sums in sorted(self.errors.items())]
        return out if self.not_replaced is None else [f"note: {self.not_replaced}", *out]


def duration(seconds: float) -> str:
    """`seconds` as the summary says them: "0.4 s", "42 s", "7 min 05 s" (the K-quants of the 2B model take
    minutes, which in seconds alone are hard to compare with the docs' figures)."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if round(seconds) < 60:  # 59.6 s reads "1 min 00 s", not "60 s"
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _new_writer(
    tmp: Path, source, recipe: Recipe | TextRecipe, keep_specs: list[str], component: Component
) -> GGUFWriter:
    name, label = source_names(source, component)
    writer = GGUFWriter(tmp, component.arch)
    writer.add_name(name)
    if (ftype := file_type(recipe)) is not None:
        writer.add_file_type(ftype)
    writer.add_quantization_version(QUANT_VERSION)
    writer.add_string("motif_lite.quantize.source", label)
    writer.add_string(QUANTIZE_TYPE_KEY, recipe.name)
    writer.add_string("motif_lite.quantize.recipe", json.dumps(keep_specs))
    writer.add_string(QUANTIZER_VERSION_KEY, VERSION)  # which build wrote the file, as a video's settings say
    if source.config_json is not None:
        writer.add_string(component.config_key, source.config_json)
    return writer


def source_names(source: SafetensorsSource | GGUFSource, component: Component) -> tuple[str, str]:
    """(`general.name`, `motif_lite.quantize.source`) of the file made of `source`: the model's name and what it was
    made from, without the folders above (files get shared, and /home/alice/... says nothing a reader can use).
    A checkpoint's component folder gives the checkpoint's name (`Motif-Video-2B`, `Motif-Video-2B/transformer`);
    a single file its own (`motif_video_2b_bf16`, `motif_video_2b_bf16.safetensors`), not its folder's
    (ComfyUI's `diffusion_models`); a GGUF keeps the name its metadata gives, as llama.cpp's requantizing does."""
    if isinstance(source, GGUFSource):
        return source.model_name or source.path.stem, source.path.name
    folder = source.files[0].parent
    if folder.name == component.folder:
        checkpoint = checkpoint_name(folder.parent)
        return checkpoint, f"{checkpoint}/{folder.name}"
    if len(source.files) == 1:
        return source.files[0].stem, source.files[0].name
    return folder.name, folder.name


def checkpoint_name(folder: Path) -> str:
    """A checkpoint folder's name; for a snapshot in the Hugging Face cache (`models--ORG--NAME/snapshots/HASH`,
    what a repo id as SRC reads), the repo's NAME rather than the commit hash the folder is named after."""
    repo_folder = folder.parent.parent
    if folder.parent.name == "snapshots" and repo_folder.name.startswith("models--"):
        return repo_folder.name.rsplit("--", 1)[-1]  # repo ids hold no "--"
    return folder.name


def encode_checked(values: torch.Tensor, qtype: GGMLQuantizationType, name: str, device: str) -> np.ndarray:
    """`values` (tensor `name`'s, or some of its rows) as `qtype`'s raw blocks; a `CheckpointError` for NaN or inf,
    and for values too large for the type (F16, or a block type's fp16 scale, would store inf)."""
    if not bool(torch.isfinite(values).all()):
        raise CheckpointError(f"tensor {name!r} contains NaN or infinite values")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, in words
        blocks = quantize_tensor(values, qtype, device=device)
    largest = float(values.abs().max()) if values.numel() else 0.0
    # Below float16's largest value no 16-bit scale can overflow (each is at most the block's largest magnitude):
    # only then is it worth decoding the blocks to look.
    if largest > torch.finfo(torch.float16).max and not _decodes_finite(blocks, qtype):
        raise CheckpointError(
            f"tensor {name!r} has values up to {largest:.0e}, too large for {qtype.name} (its 16-bit scales overflow): "
            f"make a GGUF that keeps it wider with python -m motif_lite.quantize ... --keep '{name}=BF16'"
        )
    return blocks


def _decodes_finite(blocks: np.ndarray, qtype: GGMLQuantizationType) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(gguf_quants.dequantize(blocks, qtype)).all())


def quantize_checkpoint(
    source: SafetensorsSource | GGUFSource,
    out: str | Path,
    recipe: Recipe | TextRecipe,
    keep: list[tuple[str, GGMLQuantizationType]] | None = None,
    *,
    force: bool = False,
    device: str = "cpu",
    progress: bool = True,
    component: Component = TRANSFORMER,
) -> Summary:
    """Quantize every tensor of `source` with `recipe` (+ `keep` rules from `parse_keep`) into `out`.

    `component`: what `source` holds (`components.TRANSFORMER` or `TEXT_ENCODER`, opened with the same component);
    `recipe` is one of its recipes. Writes `out.tmp` and renames it at the end, so a failure never leaves a
    half-written `out`. Refuses to replace an existing `out` unless `force`.
    """
    out = check_output(source, out, recipe, force=force)
    keep = list(keep or [])
    plan = component.plan(source.shapes, recipe, keep)
    tmp = out.with_name(out.name + ".tmp")
    with _writing(out):  # a folder we may not write to fails here, before the work
        claim = _claim(tmp, out)
    writer, started = None, time.perf_counter()
    try:  # from the claim on, OUT.tmp is this run's: removed, and the claim let go, however the work ends
        writer = _new_writer(tmp, source, recipe, [f"{p}={t.name}" for p, t in keep], component)
        _check_free_space(out, plan_bytes(source.shapes, plan) + HEADER_ALLOWANCE)
        summary = _write_tensors(writer, out, source, plan, device, progress, component.tensor_class)
        with _writing(out):
            writer.close()
            # as a run keeps its video: where `out` is held open (a run or server reading it), a name beside it
            written, not_replaced = replace_or_beside(tmp, out, unused_path, "another program has open")
    except BaseException as stopped:
        if writer is not None:
            writer.close()
        _remove_partial(tmp, out, stopped)
        raise
    finally:
        if claim is not None:
            os.close(claim)
    summary.path, summary.not_replaced = written, not_replaced
    summary.from_gguf = source.is_gguf
    summary.seconds = time.perf_counter() - started
    return summary


def _remove_partial(tmp: Path, out: Path, stopped: BaseException) -> None:
    """Remove the partial `tmp` of a run that `stopped`. Where it cannot be (its folder closed, chmod 000, during the
    work), an error that says `out` was not written and that `tmp` is left, for an error of the work; the stop itself
    for Ctrl-C and the stop signals, which say that `out` was not written."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        if not isinstance(stopped, Exception):
            return
        reason = unreachable_path(exc) or f"{tmp}: {exc.strerror or exc}"
        raise OutputError(
            f"{out} was not written: {reason}; its partial file is left there: remove it once it can be reached "
            f"(rm {quoted(tmp)})"
        ) from None


def check_output(
    source: SafetensorsSource | GGUFSource, out: str | Path, recipe: Recipe | TextRecipe, *, force: bool = False
) -> Path:
    """`out` as the file to write, expanded (`~`); a `ConfigError` for an output that cannot or must not be written:
    a folder, not named .gguf, the source itself, an existing file without `force`, a missing folder, elsewhere a
    Windows path (`paths.windows_path_problem`), on Windows a name it refuses (`paths.windows_name_problem`). The
    CLI calls it before its notes on the source, so that a refusal is not preceded by them; `quantize_checkpoint`
    again."""
    if sys.platform == "win32" and (windows := windows_name_problem(str(out))) is not None:  # `-o nul.gguf`
        raise ConfigError(windows)
    # As its command line's -o (`path_arg`): `\out\x.gguf` from Python was written as one file of that name here
    if (windows := windows_path_problem(str(out))) is not None:
        raise ConfigError(windows)
    folder_meant = str(out).endswith(("/", os.sep))  # `-o gguf/`: Path drops the slash, and the folder meant
    out = user_path(out)  # a quoted "~/x.gguf" reaches us unexpanded, as the source does
    example = out / f"model-{recipe.name}.gguf"
    if out.is_dir():  # checked first: --force cannot replace a folder, and would fail only after all the work
        raise ConfigError(f"{out} is a folder; name the .gguf file to write, e.g. {example}")
    if folder_meant:  # not "name it out.gguf": the name was the folder's
        raise ConfigError(f"{out} is not a folder; create it first ({make_folder_command(out)}) and name the "
                          f".gguf file to write in it, e.g. {example}")  # fmt: skip
    if out.suffix.lower() != ".gguf":  # the loaders tell a GGUF by its name: any other would be read as safetensors
        raise ConfigError(f"{out}: the quantizer writes a GGUF file; name it .gguf, e.g. {out.with_suffix('.gguf')}")
    if source.is_gguf and out.exists() and out.samefile(source.path):  # even with --force: the source is read to
        # the end, and replacing a file still mapped fails on Windows after all the work
        raise ConfigError(f"{out} is the source file; write the new file under another name (-o)")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it (in Python force=True)")
    if (problem := output_folder_problem(out.parent, "output folder")) is not None:
        raise ConfigError(problem)
    return out


def _claim(tmp: Path, out: Path) -> int | None:
    """A descriptor of `tmp`, created if missing but not truncated, and locked for this run (where the system has
    `flock`): a second quantizer started with the same -o wrote into the same OUT.tmp, and the file renamed into
    place was a mixture of both. A lock of a run that died goes with it: a leftover OUT.tmp is no obstacle.
    None where there is no lock to hold (Windows, which also refuses to rename or remove a file left open)."""
    claim = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o666)
    if fcntl is None:  # Windows: no advisory locks here
        os.close(claim)
        return None
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(claim)
        raise ConfigError(
            f"another quantizer is writing {out} now ({tmp.name} is in use): wait for it to finish, or write "
            "elsewhere (-o)"
        ) from None
    return claim


def _check_free_space(out: Path, needed: int) -> None:
    """Refuse before the work (minutes for the K-quants) rather than fail at its end on a full disk."""
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise OutputError(
            f"{out.parent} has {file_size(free)} free; {out.name} needs about {file_size(needed)}: free some space or "
            "write it elsewhere (-o)"
        )


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    """An `OSError` of writing the output (no permission, read-only or full disk) as a user error naming the file."""
    try:
        yield
    except OSError as exc:
        if not out_of_space(exc, out.parent):
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}; choose another -o") from None
        if exc.errno == errno.EDQUOT:  # the disk's free space is not what ran out
            raise OutputError(
                f"cannot write {out}: {exc.strerror} (your disk quota there is used up): free some of your files or "
                "write it elsewhere (-o)"
            ) from None
        # free_bytes, not shutil.disk_usage: a folder gone or no longer answering would raise here, a traceback.
        free = free_bytes(out.parent)
        room = f"{file_size(free)} free in {out.parent}; " if free is not None else ""
        raise OutputError(
            f"cannot write {out}: No space left on device ({room}another program may have taken what the check "
            "before the work saw): free some space or write it elsewhere (-o)"
        ) from None


def _write_tensors(writer: GGUFWriter, out: Path, source, plan, device: str, progress: bool, tensor_class) -> Summary:
    """Write `plan`'s tensors through `writer` (into OUT.tmp); `out` is the name errors give."""
    for name, qtype in plan.items():
        if not source.shapes[name]:
            raise CheckpointError(f"tensor {name!r} is a scalar; GGUF cannot store 0-d tensors")
        shape = byte_shape(source.shapes[name], qtype)
        writer.add_tensor_info(name, shape, np.dtype(np.uint8), math.prod(shape), raw_dtype=qtype)
    with _writing(out):
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
    summary = Summary(path=Path(writer.path))
    # Counted in weights, not tensors, and advanced per row slice: tensor sizes differ 10,000-fold (the text
    # encoder's token table alone is 16 % of its weights), so a count of tensors would stall and mislead.
    total = sum(math.prod(source.shapes[name]) for name in plan)
    with tqdm(total=total, desc="quantizing", unit="weight", unit_scale=True, disable=not progress) as bar:
        for name, qtype in plan.items():
            shape = source.shapes[name]
            sums = summary.errors.setdefault(tensor_class(name, shape), _ErrorSums())
            packed = source.blocks(name, qtype)
            if packed is not None:  # a GGUF's tensor already of the planned type: its blocks as they are, no loss
                values = source.read(name).numpy()
                sums.add(values, values)
                bar.update(values.size)
            else:
                packed = _encoded(source, name, qtype, device, sums, bar)
            with _writing(out):
                writer.write_tensor_data(packed)
            summary.n_params += math.prod(shape)
            summary.data_bytes += packed.nbytes
            summary.types[qtype.name] += 1
    return summary


def _encoded(source, name: str, qtype: GGMLQuantizationType, device: str, sums: _ErrorSums, bar: tqdm) -> np.ndarray:
    """Tensor `name` of `source` quantized to `qtype`, a slice of rows at a time, its error added to `sums`."""
    shape = source.shapes[name]
    packed = np.empty(byte_shape(shape, qtype), dtype=np.uint8)
    for rows in row_slices(shape):
        values = source.read(name, rows)
        packed[rows] = encode_checked(values, qtype, name, device)
        sums.add(values.numpy(), gguf_quants.dequantize(packed[rows], qtype).reshape(values.shape))
        bar.update(values.numel())
    return packed


def row_slices(shape: tuple[int, ...]) -> list[slice]:
    """Slices of the first dimension covering a tensor of `shape` in pieces of about `CHUNK_VALUES` values."""
    if len(shape) < 2:
        return [slice(None)]
    step = max(1, CHUNK_VALUES // math.prod(shape[1:]))
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]
