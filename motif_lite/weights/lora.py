"""LoRA files for the transformer: read diffusers/PEFT and kohya/ComfyUI files and check them against the model's
linear layers and its patch embedder's Conv3d, before any model weight is read (weights/lora_apply.py then merges
or attaches them).

    files = read_loras([LoRASpec.parse("style.safetensors:0.8")], lora_targets(meta_model))  # checked, no weights

A LoRA adds `scale · B·A` to the weight W of a linear layer (A: `[rank, in]`, "lora_A" / "lora_down"; B:
`[out, rank]`, "lora_B" / "lora_up"), with scale = strength × alpha / rank (alpha from the file; without one the
scale is the strength alone). On the Conv3d (W: `[out, in, kt, kh, kw]`) A is a convolution with the layer's kernel,
`[rank, in, kt, kh, kw]`, and B a 1x1x1 one, `[out, rank, 1, 1, 1]`, as PEFT and kohya save them: the change is
`scale · B·A` of the two flattened to matrices, shaped as W.

Formats (detected from the tensor names):
- "peft" (diffusers/PEFT): `[transformer.]<module>.lora_A.weight` / `.lora_B.weight`; alpha from `.alpha`
  tensors or from the `lora_adapter_metadata` JSON that diffusers writes (`lora_alpha`, `alpha_pattern`,
  `use_rslora`: scale alpha / sqrt(rank); a pipeline's file names them `transformer.lora_alpha`, ...).
- "kohya" (kohya-ss, ComfyUI): `diffusion_model.<module>.lora_down.weight` / `.lora_up.weight` / `.alpha`, or the
  same under `lora_unet_<module with "_" for ".">` (OneTrainer: `lora_transformer_`, SimpleTuner: `lycoris_`).
- "lycoris" (LyCORIS LoHa and LoKr, `ProductUpdate`): `<module>.hada_w1_a` ... `.hada_w2_b`, or `.lokr_w1` /
  `.lokr_w2` (each whole or as `_a` and `_b`), with `.alpha`, under the same prefixes; linears only (merged into
  float weights, kept beside packed ones: weights/lora_apply.py).
Any of these prefixes (or none) goes with either pair of part names, as trainers mix them; the format is named
after the part names.
Module names may use any of the three text cross-attention layouts (weights/keymap.py); they are mapped to the
loaded model's.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.errors import MotifLiteError, counted, shown
from motif_lite.io.file_kinds import PICKLE_SUFFIXES, file_kind, has_extension, starts_as_gguf
from motif_lite.json_values import NotAJSONObject, is_finite_number, parse_json_object
from motif_lite.paths import user_path, user_path_kept_here
from motif_lite.shell_syntax import quoted
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.keymap import LAYOUT_PATTERNS, to_checkpoint_name
from motif_lite.weights.lora_values import same_file_twice, split_strength, summed_strength
from motif_lite.weights.quant_linear import QuantizedLinear
from motif_lite.weights.safetensors_header import TruncatedError, read_header
from motif_lite.weights.shapes import listing, named

# One key of a LoRA: an optional prefix, the module, the part. Trainers mix the prefixes and part names of the two
# conventions (diffusion-pipe and ComfyUI save `diffusion_model.<module>.lora_A.weight`, some kohya forks
# `transformer.<module>.lora_down.weight`), so any prefix goes with any part name. OneTrainer writes
# `lora_transformer_<module with "_">` and SimpleTuner's LyCORIS plain LoRAs `lycoris_<module with "_">`, as
# ComfyUI reads them.
_KEY = re.compile(
    r"^(?:transformer\.|base_model\.model\.|diffusion_model\.|lora_unet_|lora_transformer_|lycoris_)?"
    r"(?P<module>.+?)\."
    r"(?:lora_(?P<part>A|B|down|up)\.weight|(?P<alpha>alpha)|(?P<diff>diff|diff_b)"
    r"|(?P<lycoris>hada_w[12]_[ab]|lokr_w[12](?:_[ab])?))$"
)
_PARTS = {"A": "down", "B": "up", "down": "down", "up": "up"}
# The text encoder's layers in a LoRA trained with it: diffusers' `text_encoder.`, kohya's `lora_te_` / `lora_te1_`.
_TEXT_ENCODER = re.compile(r"^(?:text_encoder(?:_\d)?\.|lora_te\d?_)")
# Tensor names of files that are not a plain LoRA (they would need their own math or loader): what the file is,
# and what to do instead.
_MERGE_IT = (
    "merge it into the transformer's weights with the tool that trained it and pass those with --diffusion-model, "
    "or use a plain LoRA (lora_A/lora_B or lora_down/lora_up)"
)
_OTHER_ADAPTERS = [
    (re.compile(r"\.(hada_t[12]|lokr_t[12])$"), "a LyCORIS LoHa or LoKr with a Tucker core (hada_t1, lokr_t2, ...)",
     _MERGE_IT),
    (re.compile(r"\.(dora_scale|lora_magnitude_vector)"), "a DoRA", _MERGE_IT),
    (re.compile(r"\.lora_mid\."), "a LyCORIS LoCon with a Tucker middle (lora_mid)", _MERGE_IT),
    (re.compile(r"\.lora_(B|up)\.bias$"), "a LoRA with biases (PEFT's lora_bias)", _MERGE_IT),
    (re.compile(r"\.lora_[AB]\.[^.]+\.weight$"), "a PEFT model's state dict (the adapter's name is in the keys)",
     "save the adapter with PEFT's save_pretrained or get_peft_model_state_dict, which leave the name out"),
]  # fmt: skip
# What PEFT's `save_pretrained` writes: the adapter's tensors, and beside them its settings (lora_alpha among them).
_PEFT_FILE, _PEFT_CONFIG = "adapter_model.safetensors", "adapter_config.json"
# The transformer's name in a diffusers pipeline, before its tensors' and its settings' names in a pipeline's file.
_PIPELINE_PREFIX = "transformer."
# What to do about PEFT settings no PEFT version writes.
_EDITED = "the file was edited or damaged; export the LoRA again"
# The same cross-attention projection under the diffusers layout and under the two shared layouts.
_CROSS_ALIASES = {"cross_attn.to_q": "cross_attn.query_proj", "cross_attn.to_out.0": "cross_attn.out_proj"}


class LoRAError(MotifLiteError, ValueError):
    """A LoRA file cannot be read or does not fit the transformer."""


# What a `PackedDiffError` says before the caller that knows how the run packs its weights names it.
_ANY_PACKING = "which this run holds quantized (a GGUF's packed tensor, a --quantize recipe's, or an fp8 file's)"
_ANY_PACKING_ADVICE = "run it on the bf16/fp16 safetensors transformer (no GGUF, no --quantize, not an fp8 file)"


class PackedDiffError(LoRAError):
    """A full difference (`key` of file `path`) of a tensor (`name`) the run holds quantized; said in words true of
    every way a tensor is packed, until `packed_by` names the one at hand (`what`) and the way out of whoever
    loaded the model (`advice`)."""

    def __init__(
        self,
        path: Path,
        key: str,
        name: str,
        what: str = _ANY_PACKING,
        advice: str = _ANY_PACKING_ADVICE,
    ) -> None:
        self.path, self.key, self.name, self.what = path, key, name, what
        super().__init__(self._said(f"{advice}, or use a LoRA without full differences"))

    def packed_by(self, what: str, advice: str) -> PackedDiffError:
        """This refusal naming `what` packs the tensor (a clause: "which ...") and the `advice` for it."""
        return PackedDiffError(self.path, self.key, self.name, what, advice)

    def for_a_client(self) -> str:
        """This refusal as a server's client reads it: the way out that is the client's to take (another LoRA), not
        the flags the server was started with, which only its operator sets."""
        return self._said("send a LoRA without full differences (this server's transformer cannot take them)")

    def _said(self, ways_out: str) -> str:
        return (
            f"{self.path}: its full difference {self.key} changes {self.name}, {self.what}: a full difference "
            f"applies to plain tensors only; {ways_out}"
        )


@dataclass(frozen=True)
class LoRASpec:
    """A LoRA file and its strength (1.0 = as trained; 0 = no effect; negative inverts it)."""

    path: Path
    strength: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoRASpec:
        """`FILE[:STRENGTH]`, as `--lora` takes it: the strength is what follows the last colon, if a number
        (`C:\\loras\\x.safetensors` is a file, `C:\\loras\\x.safetensors:0.8` that file at 0.8). A file that
        exists as written is taken whole, though its name ends in a colon and a number, unless the part before
        that colon exists too."""
        path, sep, tail = text.rpartition(":")
        if sep and user_path(text).exists() and not user_path(path).exists():
            return cls(_lora_file(text))
        if (joined := _files_joined_by_commas(text)) is not None:
            # quoted: pasted, a path with a space in it would be two words
            raise LoRAError(f"--lora {text}: one LoRA per --lora: {' '.join(f'--lora {quoted(f)}' for f in joined)}")
        # `style.safetensors:0.8:extra`: a file, then more than one strength (was "LoRA file not found")
        missing = sep and not user_path(text).exists() and not user_path(path).exists()
        if missing and (found := _file_before_a_colon(text)) is not None:
            file, rest = found
            raise LoRAError(
                f"--lora {text}: the strength {rest!r} is not a number; use FILE:STRENGTH, e.g. {quoted(f'{file}:0.8')}"
            )
        if sep:
            try:
                strength = float(tail)
            except ValueError:
                if user_path(path).exists() and re.fullmatch(r"[+-]?\d*,\d+", tail):  # a locale's decimal comma
                    meant = f"{path}:{tail.replace(',', '.')}"
                    raise LoRAError(
                        f"--lora {text}: the strength takes a decimal point, not a comma: --lora {quoted(meant)}"
                    ) from None
                if user_path(path).exists() and not user_path(text).exists():  # `style.safetensors:strong`: a typo
                    raise LoRAError(
                        f"--lora {text}: the strength {tail!r} is not a number; use FILE:STRENGTH, e.g. "
                        f"{quoted(f'{path}:0.8')}"
                    ) from None
                return cls(_lora_file(text))  # a path with a colon in it
            if not math.isfinite(strength):
                raise LoRAError(f"LoRA strength must be a finite number, got {tail!r} in {text!r}")
            return cls(_lora_file(path), strength)
        return cls(_lora_file(text))


def _files_joined_by_commas(text: str) -> list[str] | None:
    """The `FILE[:STRENGTH]` parts of `text` where it is two or more LoRAs joined by commas (as some tools take a
    list) and each part names a file, a strength written with a decimal comma given its point (`a:0,5,b`); None
    for anything else, a file so named included."""
    parts = text.split(",")
    if len(parts) < 2 or user_path(text).exists():
        return None
    for joined in (parts, _decimal_commas_mended(parts)):
        files = [split_strength(part)[0] for part in joined]
        if len(joined) > 1 and all(file and user_path(file).is_file() for file in files):
            return joined
    return None


def _decimal_commas_mended(parts: list[str]) -> list[str]:
    """`parts` with each part of digits alone put back after the strength before it, with a point:
    ["a.safetensors:0", "5", "b.safetensors"] -> ["a.safetensors:0.5", "b.safetensors"]."""
    mended: list[str] = []
    for part in parts:
        if mended and re.fullmatch(r"\d+", part) and re.search(r":[+-]?\d*$", mended[-1]):
            mended[-1] += f".{part}"
        else:
            mended.append(part)
    return mended


def _file_before_a_colon(text: str) -> tuple[str, str] | None:
    """(file, the rest) where `text` is an existing file, a colon and more; None when no colon ends a file's name."""
    for colon in (m.start() for m in re.finditer(":", text)):
        if user_path(text[:colon]).is_file():
            return text[:colon], text[colon + 1 :]
    return None


def lora_specs(loras: Sequence[LoRAEntry] | Mapping[str | Path, float]) -> list[LoRASpec | LoRAFile]:
    """The LoRAs as the Python API takes them: each a file or a (file, strength) pair, or a {file: strength} dict;
    `LoRAError` naming the entry for anything else (a bare file instead of a list, a strength that is not a finite
    number, a missing file). A `LoRAFile` (read already) is kept as it is: `preflight.check_loras` reads the rest."""
    if isinstance(loras, str | Path):  # a str is a sequence too: its letters would be read as files
        file, strength = _file_and_strength(str(loras))
        raise LoRAError(
            f"loras takes a list of files or (file, strength) pairs, or a {{file: strength}} dict, e.g. "
            f"loras={{{file!r}: {strength:g}}}"
        )
    if _one_pair(loras):  # iterating it would read the file as a LoRA and its strength as another
        file, strength = str(loras[0]), float(loras[1])
        raise LoRAError(
            f"loras takes a list of (file, strength) pairs, even for one LoRA: loras=[({file!r}, {strength:g})] (or "
            f"loras={{{file!r}: {strength:g}}}), got the pair alone"
        )
    if isinstance(loras, Mapping):  # iterating it would give the files alone, each at strength 1
        loras = list(loras.items())
    if not isinstance(loras, Iterable):  # None (as "no LoRAs"?) was a TypeError from the loop below
        raise LoRAError(
            f"loras takes a list of files or (file, strength) pairs, e.g. loras=[('style.safetensors', 0.8)], or [] "
            f"for none; got {type(loras).__name__} {loras!r}"
        )
    specs: list[LoRASpec | LoRAFile] = []
    for entry in loras:
        if isinstance(entry, LoRAFile):
            specs.append(entry)
            continue
        if isinstance(entry, str | Path):
            specs.append(LoRASpec(_lora_file(entry)))
            continue
        path, strength = entry if isinstance(entry, tuple | list) and len(entry) == 2 else (None, None)
        number = isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength)
        if not isinstance(path, str | Path) or not number:
            raise LoRAError(
                f"each LoRA is a file or a (file, strength) pair with a finite number as strength, e.g. "
                f"('style.safetensors', 0.8); got {entry!r}"
            )
        specs.append(LoRASpec(_lora_file(path), float(strength)))
    for spec in specs:
        if isinstance(spec, LoRASpec) and not spec.path.is_file():
            raise LoRAError(_not_found(spec.path))
    if (twice := same_file_twice([spec_of(s).path for s in specs])) is not None:
        first, second = (spec_of(specs[i]) for i in twice)
        total = summed_strength(first.strength, second.strength)
        raise LoRAError(
            f"loras names the same file twice ({str(first.path)!r} and {str(second.path)!r}), which would apply twice "
            f"(at {first.strength:g} + {second.strength:g}); give it once with the summed strength: "
            f"({str(first.path)!r}, {total:g})"
        )
    return specs


def spec_of(lora: LoRASpec | LoRAFile) -> LoRASpec:
    """The file and strength of a LoRA `lora_specs` gave, read already or not."""
    return lora.spec if isinstance(lora, LoRAFile) else lora


def _one_pair(loras: object) -> bool:
    """Whether `loras` is one (file, strength) pair where a list of them belongs: `set_loras(("style", 0.8))`."""
    if not isinstance(loras, tuple | list) or len(loras) != 2:
        return False
    file, strength = loras
    return isinstance(file, str | Path) and isinstance(strength, numbers.Real) and not isinstance(strength, bool)


def _file_and_strength(text: str) -> tuple[str, float]:
    """(file, strength) of `text` read as --lora's `FILE:STRENGTH`, for the Python API's messages: a `:STRENGTH`
    typed the command line's way belongs in the strength of `loras=`, not in its file name; strength 1 without one."""
    file, strength = split_strength(text)
    return (file, strength) if file and strength is not None else (text, 1.0)


def _not_found(path: Path) -> str:
    """What to say about a LoRA entry of the Python API that names no file: `FILE:STRENGTH` is how --lora takes a
    strength, not how `loras=` does; when the file before the colon exists, that is the likely mistake."""
    file, strength = _file_and_strength(str(path))
    if file != str(path) and Path(file).is_file():
        return (
            f"LoRA file not found: {path}; loras= takes a strength as a (file, strength) pair, e.g. "
            f"loras=[({file!r}, {strength:g})]"
        )
    return f"LoRA file not found: {path}"


@dataclass
class LoRAUpdate:
    """One module's low-rank update from one file."""

    module: str  # our module name
    down: torch.Tensor  # A: [rank, in] (a linear) or [rank, in, kt, kh, kw] (the Conv3d)
    up: torch.Tensor  # B: [out, rank] or [out, rank, 1, 1, 1]
    scale: float  # strength x alpha / rank (or the strength alone)


@dataclass(frozen=True)
class WeightDiff:
    """A full difference of one plain tensor (ComfyUI's `.diff` for a weight, `.diff_b` for a bias): the tensor
    becomes `tensor + strength · diff`."""

    tensor: str  # our parameter name, e.g. "transformer_blocks.0.norm1.linear.bias"
    diff: torch.Tensor
    strength: float


@dataclass
class ProductUpdate:
    """One linear's LyCORIS change from one file: LoHa `(w1a·w1b) ⊙ (w2a·w2b)` or LoKr `w1 ⊗ w2` (each of w1, w2 a
    matrix or the product of two, `_a`·`_b`), times `scale` (strength × alpha / rank). It merges into a float
    weight; beside a packed one a LoHa runs as a LoRA of rank r1·r2 (`low_rank`), or as its whole change where that
    takes fewer bytes (`delta`), a LoKr as its two Kronecker factors (`kron_factors`), never made into an [out, in]
    matrix."""

    module: str  # our module name
    kind: str  # "LoHa" or "LoKr"
    factors: dict[str, torch.Tensor]  # by LyCORIS' names: hada_w1_a, ..., lokr_w1 or lokr_w1_a and lokr_w1_b, ...
    scale: float

    def delta(self, device: torch.device | None = None) -> torch.Tensor:
        """The change `[out, in]` before `scale`, in float32 on `device` (made when merged: a layer's worth of
        memory, which the file's small factors do not hold)."""
        f = {name: t.to(device, torch.float32) for name, t in self.factors.items()}
        if self.kind == "LoHa":
            return (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"])
        return torch.kron(_lokr_factor(f, "lokr_w1"), _lokr_factor(f, "lokr_w2"))

    def low_rank(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A LoHa's change before `scale` as a LoRA's (down [r1·r2, in], up [out, r1·r2]) in float32, exactly:
        `(w1a·w1b)[i, j] · (w2a·w2b)[i, j]` is the sum over (k, l) of `w1a[i, k]·w2a[i, l]` (up's row i, column
        (k, l)) times `w1b[k, j]·w2b[l, j]` (down's row (k, l), column j)."""
        f = {name: t.float() for name, t in self.factors.items()}
        up = (f["hada_w1_a"][:, :, None] * f["hada_w2_a"][:, None, :]).flatten(1)
        down = (f["hada_w1_b"][:, None, :] * f["hada_w2_b"][None, :, :]).flatten(0, 1)
        return down, up

    def kron_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A LoKr's w1 [a, c] and w2 [b, d] in float32 (each stored whole or made from its `_a` and `_b`): its change
        before `scale` is `kron(w1, w2)`, [a·b, c·d]."""
        f = {name: t.float() for name, t in self.factors.items()}
        return _lokr_factor(f, "lokr_w1"), _lokr_factor(f, "lokr_w2")

    def low_rank_size(self) -> int:
        """A LoHa's rank as a LoRA (`low_rank`): r1·r2."""
        return self.factors["hada_w1_b"].shape[0] * self.factors["hada_w2_b"].shape[0]

    def kron_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The shapes of a LoKr's w1 and w2 (`kron_factors`)."""
        return _lokr_factor_shape(self.factors, "lokr_w1"), _lokr_factor_shape(self.factors, "lokr_w2")

    def shape(self) -> tuple[int, int]:
        """The weight shape (out, in) of the layer it changes."""
        f = self.factors
        if self.kind == "LoHa":
            return (f["hada_w1_a"].shape[0], f["hada_w1_b"].shape[1])
        rows, columns = zip(*self.kron_shapes(), strict=True)
        return (math.prod(rows), math.prod(columns))

    def is_zero(self) -> bool:
        """Whether the change is zero: one of its products' factors all zero (LyCORIS starts w2 or w2_b at zero)."""
        groups = [("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")] if self.kind == "LoHa" else [
            ("lokr_w1", "lokr_w1_a", "lokr_w1_b"), ("lokr_w2", "lokr_w2_a", "lokr_w2_b")]  # fmt: skip
        return any(any(not self.factors[n].any() for n in group if n in self.factors) for group in groups)


def _lokr_factor(factors: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """A LoKr's w1 or w2: stored whole, or as the product of its `_a` and `_b`."""
    return factors[name] if name in factors else factors[f"{name}_a"] @ factors[f"{name}_b"]


def _lokr_factor_shape(factors: Mapping[str, torch.Tensor], name: str) -> tuple[int, int]:
    if name in factors:
        return tuple(factors[name].shape)
    return (factors[f"{name}_a"].shape[0], factors[f"{name}_b"].shape[1])


@dataclass
class LoRAFile:
    """A checked LoRA file: every update names a linear (or the Conv3d) of the model with matching shapes."""

    spec: LoRASpec
    format: str
    updates: list[LoRAUpdate]
    # The transformer config whose layers it was read and checked against (`preflight.loras_for_config`), so a load
    # of a transformer of that config takes it without building the model again; None: checked against a model's
    # layers alone, or not known to be (a Python caller's), and checked again by `preflight.check_loras`.
    checked_for: TransformerConfig | None = None
    diffs: list[WeightDiff] = field(default_factory=list)  # full differences of plain tensors (norms, biases)
    products: list[ProductUpdate] = field(default_factory=list)  # LyCORIS LoHa / LoKr changes of linears

    def describe(self) -> str:
        # A LoRA saved before training changed anything (PEFT starts B at zero) makes the video it would make
        # without it: said, as the video alone would not tell why the LoRA shows no effect.
        zero = ", all zero: no effect; saved before training?" if self.is_zero() else ""
        diffs = f", {counted(len(self.diffs), 'full difference')}" if self.diffs else ""
        layers = len(self.updates) + len(self.products)
        return f"{self.spec.path.name} x{self.spec.strength:g} ({self.format}, {counted(layers, 'layer')}{diffs}{zero})"

    def is_zero(self) -> bool:
        """Whether every update of the file is zero (its up or its down weights all zero), at any strength."""
        return (
            all(not (u.up.any() and u.down.any()) for u in self.updates)
            and not any(d.diff.any() for d in self.diffs)
            and all(p.is_zero() for p in self.products)
        )


# What `load_pipeline(loras=...)` takes per LoRA: a file (strength 1, as --lora FILE), a (file, strength) pair, or
# a `LoRAFile` read and checked already (`read_loras`: run hands on the files it checked before the plan).
LoRAEntry = str | Path | tuple[str | Path, float] | LoRAFile


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{module name: (out_features, in_features)} of every linear layer (float or packed). Works on a model built on
    the meta device."""
    return {
        name: (module.out_features, module.in_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | QuantizedLinear | Float8Linear)
    }


def lora_targets(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """{module name: weight shape} of every layer a LoRA may adapt: each linear, (out, in) (`linear_shapes`), and
    each Conv3d (the patch embedder), (out, in, kt, kh, kw). Works on a model built on the meta device."""
    convolutions = {name: tuple(m.weight.shape) for name, m in model.named_modules() if isinstance(m, nn.Conv3d)}
    return {**linear_shapes(model), **convolutions}


def update_shape(update: LoRAUpdate) -> tuple[int, ...]:
    """The weight shape of the layer `update` changes: (out, in) for a linear, (out, in, kt, kh, kw) for a Conv3d."""
    return (update.up.shape[0], *update.down.shape[1:])


def read_loras(
    specs: Iterable[LoRASpec],
    targets: Mapping[str, tuple[int, ...]],
    tensors: Mapping[str, tuple[tuple[int, ...], bool]] | None = None,
) -> list[LoRAFile]:
    """Read and check LoRA files against the model's linears and Conv3d (`lora_targets`) and, for full differences
    (`.diff`, `.diff_b`), its tensors (`diff_targets`; None: the differences are checked when applied); raises
    `LoRAError` naming every key that matches no module, every shape mismatch, or an unknown format — before any
    model weight is read."""
    return [_read_lora(spec, targets, tensors) for spec in specs]


def diff_targets(model: nn.Module, packed_weights: Collection[str] = ()) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{tensor name: (shape, packed)} of the tensors a full difference may change: every parameter (plain), and the
    weight of every packed linear (`QuantizedLinear`, `Float8Linear`), which cannot take one; `packed_weights`: the
    weights of a float model standing for one whose linears load packed (`sizes.packed_weight_names`), which count as
    packed too. Works on the meta device."""
    found = {name: (tuple(p.shape), False) for name, p in model.named_parameters()}
    for name, module in model.named_modules():
        weight = f"{name}.weight"
        if isinstance(module, QuantizedLinear | Float8Linear) or (
            isinstance(module, nn.Linear) and weight in packed_weights
        ):
            found[weight] = ((module.out_features, module.in_features), True)
    return found


def check_read_loras(
    loras: Iterable[LoRAFile],
    targets: Mapping[str, tuple[int, ...]],
    model_tensors: Mapping[str, tuple[tuple[int, ...], bool]] | None = None,
) -> None:
    """Check LoRA files read already (a Python caller's `LoRAFile`) against this model's layers (`lora_targets`):
    one read against another model or checkpoint would fail mid-load, after the old transformer was let go.
    `LoRAError` naming the layers that the model lacks or that have another shape; with the model's tensors
    (`diff_targets`), a full difference of a tensor that will load packed too (the file may have been read against
    the float model); no file is read."""
    for lora in loras:
        misfits = [u.module for u in lora.updates if targets.get(u.module) != update_shape(u)]
        misfits += [p.module for p in lora.products if targets.get(p.module) != p.shape()]
        if misfits:
            layers = len(lora.updates) + len(lora.products)
            raise LoRAError(
                f"{lora.spec.path} was read for another model: {_share(len(misfits), layers)} missing "
                f"from this transformer or shaped otherwise ({named(misfits)}); pass the file itself"
            )
        if model_tensors is None:
            continue
        for diff in lora.diffs:
            if diff.tensor not in model_tensors:
                raise LoRAError(f"{lora.spec.path} was read for another model: this transformer has no {diff.tensor}, "
                                "which its full difference changes; pass the file itself")  # fmt: skip
            shape, packed = model_tensors[diff.tensor]
            check_diff_target(lora.spec.path, diff.tensor, diff.tensor, tuple(diff.diff.shape), shape, packed)


def check_lora_file(spec: LoRASpec) -> str:
    """The format ("peft", "kohya" or "lycoris") of the LoRA file `spec` names, from the file alone, for a check with no
    model at hand: `LoRAError` for a file that is no readable safetensors LoRA (a pickle, a GGUF, an empty file,
    another kind of adapter, a model's weights, unknown tensor names, PEFT settings that cannot be read). Its
    layers need the model: `read_loras`."""
    with _opened_lora(spec.path) as f:  # the names and metadata only: no tensor is read
        names, metadata = f.keys(), f.metadata() or {}
    fmt, parsed = _parse_keys(spec.path, names)
    if fmt == "peft":
        _peft_alphas(spec.path, metadata)
    return _format_name(fmt, parsed)


def _read_lora(
    spec: LoRASpec,
    targets: Mapping[str, tuple[int, ...]],
    model_tensors: Mapping[str, tuple[tuple[int, ...], bool]] | None = None,
) -> LoRAFile:
    with _opened_lora(spec.path) as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118
    fmt, parsed = _parse_keys(spec.path, tensors)
    diff_keys = {k: v for k, v in parsed.items() if v[1] in ("diff", "diff_b")}
    parsed = {k: v for k, v in parsed.items() if k not in diff_keys}
    diffs = _diffs(spec, diff_keys, tensors, model_tensors)
    module_names = _module_names(targets)
    pairs: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    spelled: dict[str, str] = {}  # our module name -> the file's (what PEFT matched its alpha_pattern against)
    keys: dict[tuple[str, str], list[str]] = defaultdict(list)  # (our module, part) -> the file's keys for it
    unmatched: set[str] = set()
    for key, (module, part) in parsed.items():
        ours = module_names.get(module)
        if ours is None:
            unmatched.add(module)
        else:
            pairs[ours][part] = tensors[key]
            spelled[ours] = module
            keys[ours, part].append(key)
    _check_one_key_per_part(spec.path, keys, tensors)
    if unmatched:
        # Named like this model's layers but fitting none (a Flux or HunyuanVideo LoRA: more blocks than this model,
        # the same names for the first ones): another model's, said so rather than listing its deeper blocks.
        _check_some_shapes_fit(spec.path, pairs, targets, len(unmatched))
        raise LoRAError(_unmatched(spec.path, sorted(unmatched), len(unmatched) + len(pairs)))
    _check_some_shapes_fit(spec.path, pairs, targets)
    # PEFT's alpha rule for its lora_A/lora_B modules, LyCORIS parts beside them or not.
    alphas = _peft_alphas(spec.path, metadata) if fmt == "peft" else None
    lycoris = {module: parts for module, parts in pairs.items() if any(p.startswith(_LYCORIS) for p in parts)}
    updates = [
        _update(spec, module, parts, targets[module], alphas, spelled[module])
        for module, parts in sorted(pairs.items())
        if module not in lycoris
    ]
    products = [_product(spec, module, parts, targets[module]) for module, parts in sorted(lycoris.items())]
    return LoRAFile(spec, _format_name(fmt, parsed), updates, diffs=diffs, products=products)


def _diffs(
    spec: LoRASpec,
    keys: Mapping[str, tuple[str, str]],
    tensors: Mapping[str, torch.Tensor],
    model_tensors: Mapping[str, tuple[tuple[int, ...], bool]] | None,
) -> list[WeightDiff]:
    """The full differences of a file (`.diff`: the module's weight, `.diff_b`: its bias), checked against the model's
    tensors when known: a name it lacks, another shape, or a packed weight (which cannot take one) is refused."""
    diffs = []
    for key, (module, part) in sorted(keys.items()):
        name = f"{module}.{'weight' if part == 'diff' else 'bias'}"
        diff = tensors[key]
        if not diff.is_floating_point():
            raise LoRAError(f"{spec.path}: the full difference {key} is {diff.dtype}, not floats: {_EDITED}")
        _check_finite(spec, name, {"full difference": diff})
        if model_tensors is not None:
            if name not in model_tensors:
                raise LoRAError(f"{spec.path}: the full difference {key} is for {name}, which the Motif-Video "
                                "transformer does not have (a LoRA for another model or version?)")  # fmt: skip
            shape, packed = model_tensors[name]
            check_diff_target(spec.path, key, name, tuple(diff.shape), shape, packed)
        diffs.append(WeightDiff(name, diff, spec.strength))
    return diffs


def check_diff_target(
    path: Path, key: str, name: str, shape: tuple[int, ...], target: tuple[int, ...], packed: bool
) -> None:
    """A full difference `key` of shape `shape` on the model's tensor `name` (`target`, packed or plain): refused
    when that tensor is packed (quantized: it cannot absorb a difference) or shaped otherwise."""
    if packed:
        raise PackedDiffError(path, key, name)
    if shape != target:
        raise LoRAError(f"{path}: the full difference {key} is shaped {list(shape)}, but {name} is {list(target)}: "
                        "a LoRA for another model or version?")  # fmt: skip


def _check_one_key_per_part(
    path: Path, keys: Mapping[tuple[str, str], list[str]], tensors: Mapping[str, torch.Tensor]
) -> None:
    """A file that holds a layer's down, up or alpha twice, under two spellings (`transformer.` and
    `diffusion_model.` prefixes, dotted and underscored names, two cross-attention layouts) with other values:
    refused, naming both, as one of them would otherwise replace the other unsaid and the LoRA apply in part. The
    same values twice (a file written for two loaders' names) are one update."""
    twice = sorted(
        (module, sorted(found))
        for (module, _), found in keys.items()
        if any(not _same(tensors[found[0]], tensors[key]) for key in found[1:])
    )
    if not twice:
        return
    module, found = twice[0]
    layers = len({module for module, _ in twice})
    raise LoRAError(
        f"{path}: holds {counted(layers, 'layer')} of the transformer twice, under two names and with other values "
        f"(e.g. {module}: {' and '.join(found)}), so one would replace the other; it joins two LoRAs: pass each "
        "LoRA as a file of its own, or export it again"
    )


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors of a file hold the same values (in any float dtype)."""
    return a.shape == b.shape and torch.equal(a.float(), b.float())


def _check_some_shapes_fit(
    path: Path,
    pairs: Mapping[str, Mapping[str, torch.Tensor]],
    targets: Mapping[str, tuple[int, ...]],
    unmatched: int = 0,
) -> None:
    """A file whose layer names are the transformer's but whose shapes fit none of them is a LoRA for another
    model that names its layers alike (diffusers' Flux and HunyuanVideo transformers have transformer_blocks.N.attn.
    to_q too, 3072 wide, and more blocks: `unmatched` layers of the file are named like none of this model's): said
    so, where the first layer's shape mismatch alone would not tell. A file of one layer keeps that layer's own
    message."""
    complete = {module: parts for module, parts in pairs.items() if "down" in parts and "up" in parts}
    if len(complete) < max(2, len(pairs)) or any(_fits(p, targets[m]) for m, p in complete.items()):
        return
    module, parts = next(iter(sorted(complete.items())))
    others = f"; its {unmatched} other layers are named like none" if unmatched else ""
    raise LoRAError(
        f"{path}: its layers are named like the Motif-Video transformer's, but their shapes fit none of them "
        f"({counted(len(complete), 'layer')}{others}; e.g. {module}: down {list(parts['down'].shape)}, up "
        f"{list(parts['up'].shape)}, the layer being {list(targets[module])}); is it a LoRA for "
        "another model with the same layer names (Flux, HunyuanVideo, ...)?"
    )


def _unmatched(path: Path, modules: list[str], layers: int) -> str:
    """What to say about the layers of a LoRA file that the transformer does not have."""
    if all(_TEXT_ENCODER.match(module) for module in modules):  # trained with the text encoder: not another model
        return _text_encoder_layers(path, modules, layers)
    if len(modules) == layers:  # nothing fits: a LoRA of another model, its text encoder part, ...
        return (
            f"{path}: none of its layers ({layers}) matches a linear layer of the Motif-Video transformer; is it a "
            "LoRA for another model (Stable Diffusion, Flux, Wan, HunyuanVideo, ...) or for a text encoder? Its "
            f"layers are named like {', '.join(modules[:3])}; the transformer's like transformer_blocks.0.attn.to_q, "
            "single_transformer_blocks.0.ff.net.2"
        )
    verb = "matches" if len(modules) == 1 else "match"
    title = f"of its {layers} layers {verb} no linear layer of the transformer (a LoRA for another model or version?)"
    return f"{path}: {listing(title, modules)}"


def _text_encoder_layers(path: Path, modules: list[str], layers: int) -> str:
    """Refused rather than applied in part: the LoRA was trained with the text encoder adapted too, so the
    transformer's layers alone would make another video than the one it was trained for."""
    return (
        f"{path}: {_share(len(modules), layers)} for the text encoder (like {modules[0]}), which motif-lite does "
        "not adapt (it applies LoRAs to the transformer only, and that part alone would make another video than "
        "the LoRA was trained for); use a LoRA trained with the text encoder frozen"
    )


def _share(part: int, layers: int) -> str:
    """ "its one layer is", "all 4 of its layers are", "1 of its 3 layers is"."""
    if part == layers:
        return "its one layer is" if layers == 1 else f"all {layers} of its layers are"
    return f"{part} of its {layers} layers {'is' if part == 1 else 'are'}"


def _lora_file(given: str | os.PathLike) -> Path:
    """The LoRA file `given` names: a folder holding one .safetensors file (as diffusers' `save_lora_weights` and
    `hf download` leave one) stands for that file. A leading `~` is the home folder, as in a shell (the Python API's
    paths); `./~` is a file or folder named `~` here, kept absolute: pathlib drops the `./`, and a later reader of
    the path (`user_path`) would take what is left for the home folder."""
    path = user_path_kept_here(given)
    if not path.is_dir():
        return path
    files = sorted(f for f in path.iterdir() if has_extension(f, ".safetensors") and f.is_file())
    if len(files) == 1:
        return files[0]
    pickles = sorted(f for f in path.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES)
    if not files and len(pickles) == 1:  # an older PEFT folder's adapter_model.bin: refused when read, with the fix
        return pickles[0]
    holds = f"{len(files)} .safetensors files ({', '.join(f.name for f in files)})" if files else "no .safetensors file"
    raise LoRAError(f"LoRA {path} is a folder holding {holds}; pass the LoRA file itself")


@contextlib.contextmanager
def _opened_lora(path: Path) -> Iterator[Any]:
    """The LoRA file `path` opened with `safe_open`; a file that is missing or no readable safetensors file (a
    pickle, a GGUF, a web page, ...), here or while the block reads it, as a `LoRAError` saying what it is."""
    if not path.is_file():
        raise LoRAError(f"LoRA file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except (SafetensorError, OSError) as exc:
        if path.suffix.lower() in PICKLE_SUFFIXES:  # loading a pickle can run code: never done here
            raise LoRAError(
                f"{path} is a PyTorch pickle ({path.suffix}), which motif-lite does not load (loading one can run "
                'code); convert it once where you trust it: python -c "import torch, safetensors.torch as s; '
                f"s.save_file(torch.load('{path}', weights_only=True), '{path.with_suffix('.safetensors')}')\""
            ) from None
        if starts_as_gguf(path):  # stable-diffusion.cpp loads a LoRA from a GGUF file too
            raise LoRAError(
                f"{path} is a GGUF file: motif-lite reads a LoRA from its .safetensors file (diffusers/PEFT or "
                "kohya/ComfyUI keys), the file the LoRA was published as"
            ) from None
        if (kind := file_kind(path)) is not None:  # a failed download's page, an image: not a damaged LoRA
            raise LoRAError(f"{path} is not a LoRA file: it is {kind}") from None
        if (unfinished := _unfinished(path)) is not None:  # safetensors' own words ("header too small") don't say
            raise LoRAError(unfinished) from None
        raise LoRAError(f"{path} is not a readable safetensors LoRA file: {exc}") from None


def _unfinished(path: Path) -> str | None:
    """What to say about a LoRA file that is empty or shorter than its header says (a download or copy that
    stopped), if it is one of those."""
    again, stopped = "download or export it again", "a download or copy that did not finish"
    try:
        size = path.stat().st_size
        if size == 0:
            return f"{path} is empty (0 bytes: a download or export that did not finish); {again}"
        if size < 8:  # not even the header's length
            start = "less than a safetensors file's 8-byte start"
            return f"{path} is cut short ({size} bytes, {start}: {stopped}); {again}"
        read_header(path)
    except TruncatedError as exc:
        return (
            f"{path} is cut short ({exc.size:,} bytes where its header needs at least {exc.expected:,}: {stopped}); "
            f"{again}"
        )
    except (MotifLiteError, OSError):  # damaged some other way: the caller's message
        return None
    return None


def _parse_keys(path: Path, names: Collection[str]) -> tuple[str, dict[str, tuple[str, str]]]:
    """(format, {key: (module, part)}) for a file's tensor `names`, with part "down", "up" or "alpha"; the format,
    whose alpha rule its LoRA modules follow, is named after the part names ("peft": lora_A / lora_B, "kohya":
    lora_down / lora_up, full differences, or LyCORIS parts alone; `_format_name` names a file with LyCORIS parts
    "lycoris")."""
    matches = {k: _KEY.match(k) for k in names}
    if matches and all(matches.values()):
        # ComfyUI writes full differences (`.diff`, `.diff_b`) beside kohya's part names.
        kohya = any(m["part"] in ("down", "up") or m["diff"] for m in matches.values())
        lycoris = any(m["lycoris"] for m in matches.values())
        peft = not kohya and (not lycoris or any(m["part"] in ("A", "B") for m in matches.values()))
        return "peft" if peft else "kohya", {k: (m["module"], _part(m)) for k, m in matches.items()}
    if not names:
        raise LoRAError(f"{path} holds no tensors: the file is empty (an export that failed?); export it again")
    if message := _other_adapter(path, [k for k, m in matches.items() if not m]):
        raise LoRAError(message)
    known = [k for k, m in matches.items() if m]
    if known:
        others = sorted(set(names) - set(known))
        are = "tensor is" if len(others) == 1 else "tensors are"
        title = f"{are} not LoRA down/up/alpha, LoHa or LoKr weights (DoRA, LyCORIS' OFT, IA3, ... are not supported)"
        raise LoRAError(f"{path}: {listing(title, others)}")
    from motif_lite.io.linked import other_component  # only for this error

    if (holds := other_component("lora", names)) is not None:  # a model file in ComfyUI's models/ folders
        raise LoRAError(f"{path} is not a LoRA: it holds {holds}")
    raise LoRAError(
        f"{path}: unknown LoRA format (first keys: {sorted(names)[:3]}); supported: diffusers/PEFT "
        "(`transformer.<module>.lora_A.weight` / `lora_B.weight`) and kohya/ComfyUI "
        "(`diffusion_model.<module>.lora_down.weight` / `lora_up.weight` / `alpha`, or `lora_unet_...`)"
    )


def _format_name(fmt: str, parsed: Mapping[str, tuple[str, str]]) -> str:
    """The format a file is reported as: "lycoris" when it holds any LoHa or LoKr part, else `fmt`."""
    return "lycoris" if any(part.startswith(_LYCORIS) for _, part in parsed.values()) else fmt


def _part(match: re.Match) -> str:
    """A key's part: "down", "up", "alpha", "diff" (a weight's full difference) or "diff_b" (a bias's)."""
    return "alpha" if match["alpha"] else match["diff"] or match["lycoris"] or _PARTS[match["part"]]


def _other_adapter(path: Path, keys: Sequence[str]) -> str | None:
    """What to say about a file whose tensor names `keys` (those that are not LoRA down/up/alpha weights) are those
    of another kind of adapter, if they are recognizably one."""
    for marker, kind, remedy in _OTHER_ADAPTERS:
        found = [key for key in keys if marker.search(key)]
        if found:
            return f"{path} is {kind}, not a plain LoRA ({counted(len(found), 'tensor')} like {found[0]}): {remedy}"
    return None


def _module_names(targets: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Every spelling a LoRA file may use for our modules -> our name: the name under each cross-attention layout
    (weights/keymap.py), dotted and in kohya's underscored form. Built once, so matching a key is one lookup."""
    spellings = {name: _layout_spellings(name) for name in targets}
    names = {s.replace(".", "_"): name for name, spelled in spellings.items() for s in spelled}
    # Dotted last: should an underscored spelling equal another module's dotted one, the dotted name wins.
    names.update({s: name for name, spelled in spellings.items() for s in spelled})
    return names


def _layout_spellings(name: str) -> set[str]:
    """A cross-attention query/output projection's name in every layout; any other module's name alone."""
    for diffusers_name, shared_name in _CROSS_ALIASES.items():
        for own in (diffusers_name, shared_name):
            if name.endswith(own):
                block = name.removesuffix(own)
                shared = f"{block}{shared_name}.weight"  # the model's name in the shared layouts
                return {name, block + diffusers_name} | {
                    to_checkpoint_name(shared, layout).removesuffix(".weight") for layout in LAYOUT_PATTERNS
                }
    return {name}


def _fits(parts: Mapping[str, torch.Tensor], shape: tuple[int, ...]) -> bool:
    """Whether a module's down and up fit a layer of weight `shape`: [rank, in] and [out, rank] for a linear's
    (out, in); [rank, in, kt, kh, kw] (the layer's kernel) and [out, rank, 1, 1, 1] for a Conv3d's."""
    down, up = parts.get("down"), parts.get("up")
    if down is None or up is None or down.ndim != len(shape) or up.ndim != len(shape):
        return False
    pointwise = all(size == 1 for size in up.shape[2:])  # B of a conv LoRA is a 1x1x1 convolution
    return down.shape[1:] == shape[1:] and up.shape[0] == shape[0] and up.shape[1] == down.shape[0] and pointwise


def _expected_parts(shape: tuple[int, ...]) -> str:
    """What down and up must be for a layer of weight `shape`, in words for an error."""
    kernel = "".join(f", {size}" for size in shape[2:])
    ones = ", 1" * len(shape[2:])
    return f"down must be [rank, {shape[1]}{kernel}], up [{shape[0]}, rank{ones}]"


def _update(
    spec: LoRASpec,
    module: str,
    parts: dict[str, torch.Tensor],
    shape: tuple[int, ...],
    alphas: _Alphas | None,
    spelled: str,
) -> LoRAUpdate:
    """The update of our layer `module`, which the file calls `spelled`."""
    if "down" not in parts or "up" not in parts:
        missing = "down (lora_A)" if "down" not in parts else "up (lora_B)"
        raise LoRAError(f"{spec.path}: the LoRA of {module} has no {missing} weight")
    down, up = parts["down"], parts["up"]
    if not _fits(parts, shape):
        raise LoRAError(
            f"{spec.path}: LoRA shapes for {module} do not fit: down {list(down.shape)}, up {list(up.shape)}; "
            f"the layer is {list(shape)} ({_expected_parts(shape)})"
        )
    for name, tensor in (("down (lora_A)", down), ("up (lora_B)", up)):
        if not tensor.is_floating_point():  # integers or booleans: quantized or damaged, no LoRA's numbers
            raise LoRAError(f"{spec.path}: the {name} weight of {module} is {tensor.dtype}, not floats: {_EDITED}")
    rank = down.shape[0]
    if rank == 0:
        raise LoRAError(
            f"{spec.path}: the LoRA of {module} has rank 0 (down {list(down.shape)}, up {list(up.shape)}): it "
            "changes nothing, so the file is likely cut short; export it again"
        )
    alpha = _alpha(spec, module, parts, alphas, spelled)
    _check_finite(spec, module, {"down (lora_A)": down, "up (lora_B)": up, "alpha": alpha})
    factor = 1.0 if alpha is None else alpha / (math.sqrt(rank) if alphas and alphas.rslora else rank)
    # At most this in any element of up·down (a sum of `rank` products), made in float32 and then scaled: past the
    # largest float, the merged weight is inf.
    unscaled = rank * float(up.float().abs().max()) * float(down.float().abs().max())
    alpha_said = "" if alpha is None else f", alpha {alpha:g} (lora_alpha, alpha_pattern or its .alpha tensor)"
    what = f"the LoRA of {module} (scale {spec.strength * factor:g}{alpha_said})"
    _check_scaled_change(spec, module, what, [unscaled], factor)
    return LoRAUpdate(module, down, up, spec.strength * factor)


# The parts of a LyCORIS LoHa or LoKr (their names start so), and what each needs.
_LYCORIS = ("hada_", "lokr_")
_NEEDED = {
    "LoHa": [("hada_w1_a",), ("hada_w1_b",), ("hada_w2_a",), ("hada_w2_b",)],
    "LoKr": [("lokr_w1", "lokr_w1_a"), ("lokr_w1", "lokr_w1_b"), ("lokr_w2", "lokr_w2_a"), ("lokr_w2", "lokr_w2_b")],
}


def _product(spec: LoRASpec, module: str, parts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> ProductUpdate:
    """The LoHa or LoKr change of our layer `module`, its scale as LyCORIS defines it: strength × alpha / rank, the
    rank being the inner size of the products (LoHa: w1_b's rows; LoKr: w1_a's columns, else w2_a's); a LoKr of two
    whole matrices has none, and LyCORIS gives it scale 1 whatever its alpha; so does a missing or zero alpha."""
    kind = "LoHa" if any(p.startswith("hada_") for p in parts) else "LoKr"
    if len(shape) != 2:  # LyCORIS stores a conv's LoHa as 2-D factors too: said before their sizes are compared
        raise LoRAError(f"{spec.path}: the {kind} of {module} changes a convolution: motif-lite reads LoHa/LoKr on "
                        f"linear layers only; {_MERGE_IT}")  # fmt: skip
    others = sorted(p for p in parts if p != "alpha" and not p.startswith(_LYCORIS[kind == "LoKr"]))
    if others:
        raise LoRAError(f"{spec.path}: the {kind} of {module} has other parts beside it ({', '.join(others)}): "
                        f"{_EDITED}")  # fmt: skip
    missing = sorted({" or ".join(names) for names in _NEEDED[kind] if not any(n in parts for n in names)})
    if missing:
        raise LoRAError(f"{spec.path}: the {kind} of {module} has no {', '.join(missing)}: {_EDITED}")
    factors = {name: t for name, t in parts.items() if name != "alpha"}
    for name, tensor in factors.items():
        if tensor.ndim != 2 or not tensor.is_floating_point():
            what = f"{tensor.ndim}-D" if tensor.ndim != 2 else str(tensor.dtype)
            raise LoRAError(
                f"{spec.path}: the {kind} part {name} of {module} is {what}: motif-lite reads LoHa/LoKr on linear "
                f"layers only (2-D float matrices); {_MERGE_IT}"
            )
    _check_lokr_parts(spec, module, factors)
    inner = _inner_sizes(kind, factors)
    if inner is None:
        sizes = ", ".join(f"{n} {list(t.shape)}" for n, t in sorted(factors.items()))
        raise LoRAError(f"{spec.path}: the {kind} parts of {module} do not multiply ({sizes}): {_EDITED}")
    product = ProductUpdate(module, kind, factors, spec.strength)
    if product.shape() != tuple(shape):
        raise LoRAError(f"{spec.path}: the {kind} of {module} makes a change of shape {list(product.shape())}, but "
                        f"the layer is {list(shape)}: a LoRA for another model or version?")  # fmt: skip
    alpha = _alpha(spec, module, parts, None, module)
    _check_finite(spec, module, {**factors, "alpha": alpha})
    rank = inner[0] if inner else None
    if alpha and rank:
        product.scale = spec.strength * alpha / rank
    # At most this in any element of each side (w1, w2: a matrix, or `inner` products summed) and of their change,
    # made unscaled in float32 and then scaled: past the largest float, the merged weight is inf.
    sides = [_largest_element(factors, side) for side in ("1", "2")]
    unit_scale = alpha / rank if alpha and rank else 1.0  # the scale at strength 1
    what = f"the {kind} of {module} (scale {product.scale:g})"
    _check_scaled_change(spec, module, what, [*sides, sides[0] * sides[1]], unit_scale)
    return product


def _check_scaled_change(spec: LoRASpec, module: str, what: str, unscaled: list[float], unit_scale: float) -> None:
    """Refuses a change whose merge passes float32's largest: `unscaled` bounds the elements of what is made before
    scaling (the last, the change itself, is then scaled by strength × `unit_scale`). Blamed on the strength when
    the change fits at strength 1 (the user's number, not the file's), else on the file."""
    biggest = torch.finfo(torch.float32).max

    def largest(scale: float) -> float:
        return max(unscaled[:-1] + [unscaled[-1] * max(1.0, abs(scale))])

    if largest(spec.strength * unit_scale) < biggest:
        return
    if largest(unit_scale) < biggest:  # so |strength × unit_scale| > 1 and the change is not zero
        below = biggest / (unscaled[-1] * abs(unit_scale))
        raise LoRAError(f"{spec.path}: strength {spec.strength:g} scales the change of {module} past the largest "
                        f"float (the file's change fits at strengths between about {-below:.3g} and {below:.3g}); "
                        "use a smaller strength")  # fmt: skip
    raise LoRAError(f"{spec.path}: {what} makes a change past the largest float: {_EDITED}")


def _largest_element(factors: Mapping[str, torch.Tensor], side: str) -> float:
    """A bound on the elements of a LoHa's or LoKr's side `side` ("1" or "2"): its whole matrix's largest, or for a
    product of `_a` and `_b`, inner size × their largest."""

    def largest(tensor: torch.Tensor) -> float:
        return float(tensor.float().abs().max()) if tensor.numel() else 0.0  # an empty one (rank 0) has no max

    whole = factors.get(f"lokr_w{side}")
    if whole is not None:
        return largest(whole)
    prefix = "hada" if f"hada_w{side}_a" in factors else "lokr"
    a, b = factors[f"{prefix}_w{side}_a"], factors[f"{prefix}_w{side}_b"]
    return a.shape[1] * largest(a) * largest(b)


def _check_lokr_parts(spec: LoRASpec, module: str, factors: Mapping[str, torch.Tensor]) -> None:
    """A LoKr as LyCORIS writes it: each of w1, w2 whole or as `_a` and `_b`, not both (which would be read is not
    said), and one rank for both products (its module has one; loaders differ on which to take for an edited file)."""
    for side in ("lokr_w1", "lokr_w2"):
        split = sorted(name for name in factors if name.startswith(f"{side}_"))
        if side in factors and split:
            raise LoRAError(f"{spec.path}: the LoKr of {module} holds {side} and {', '.join(split)}, which LyCORIS "
                            f"never writes together: {_EDITED}")  # fmt: skip
    if "lokr_w1_a" in factors and "lokr_w2_a" in factors:
        ranks = factors["lokr_w1_a"].shape[1], factors["lokr_w2_a"].shape[1]
        if ranks[0] != ranks[1]:
            raise LoRAError(f"{spec.path}: the LoKr of {module} has rank {ranks[0]} in lokr_w1_a and {ranks[1]} in "
                            f"lokr_w2_a; LyCORIS writes one rank for both: {_EDITED}")  # fmt: skip


def _inner_sizes(kind: str, factors: Mapping[str, torch.Tensor]) -> list[int] | None:
    """The inner sizes of a LoHa's or LoKr's matrix products, the first one its rank ([] for a LoKr of two whole
    matrices); None when a pair does not multiply."""
    pairs = [("hada_w1_a", "hada_w1_b"), ("hada_w2_a", "hada_w2_b")] if kind == "LoHa" else [
        ("lokr_w1_a", "lokr_w1_b"), ("lokr_w2_a", "lokr_w2_b")]  # fmt: skip
    inner = []
    for a, b in pairs:
        if a in factors:
            if factors[a].shape[1] != factors[b].shape[0]:
                return None
            inner.append(factors[a].shape[1])
    if kind == "LoHa" and factors["hada_w1_a"].shape[0] != factors["hada_w2_a"].shape[0]:
        return None  # the two products must be the same shape to multiply element by element
    if kind == "LoHa" and factors["hada_w1_b"].shape[1] != factors["hada_w2_b"].shape[1]:
        return None
    return inner


def _alpha(
    spec: LoRASpec, module: str, parts: dict[str, torch.Tensor], alphas: _Alphas | None, spelled: str
) -> float | None:
    """A module's alpha: its `.alpha` tensor (which must be one number), else PEFT's metadata (whose patterns name
    the layer as the file does, `spelled`), else none."""
    if "alpha" not in parts:
        return alphas.alpha_for(spelled) if alphas else None
    if parts["alpha"].numel() != 1:
        shape = list(parts["alpha"].shape)
        raise LoRAError(f"{spec.path}: the alpha of {module} must be one number, got shape {shape}")
    return float(parts["alpha"])


def _check_finite(spec: LoRASpec, module: str, parts: Mapping[str, torch.Tensor | float | None]) -> None:
    """inf or NaN in a LoRA would only show after the first step, as latents that are no longer numbers: named here,
    with the file, before any weight is loaded."""
    for name, value in parts.items():
        finite = value is None or (
            # In float32: torch has no isfinite for the float8 dtypes (a LoRA is small: the copy costs little)
            bool(torch.isfinite(value.float()).all()) if isinstance(value, torch.Tensor) else math.isfinite(value)
        )
        if not finite:
            raise LoRAError(f"{spec.path}: the {name} of {module} holds inf or NaN: the file is damaged (or its "
                            "training diverged)")  # fmt: skip


@dataclass(frozen=True)
class _Alphas:
    """PEFT's alpha settings from diffusers' `lora_adapter_metadata`."""

    alpha: float | None
    patterns: dict[str, float]
    rslora: bool

    def alpha_for(self, module: str) -> float | None:
        # As PEFT matches `alpha_pattern` keys: a regex that must match the end of the module name, at a dot.
        for pattern, value in self.patterns.items():
            if re.match(rf"(.*\.)?({pattern})$", module):
                return float(value)
        return self.alpha


def _transformer_settings(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The transformer's PEFT settings: a pipeline's `save_lora_weights` (what diffusers' training scripts call)
    writes each component's under its name, `transformer.lora_alpha`, as it writes its tensors, and diffusers reads
    them back without it; the transformer's own `save_lora_adapter` and PEFT write `lora_alpha` alone."""
    prefixed = {key.removeprefix(_PIPELINE_PREFIX): v for key, v in config.items() if key.startswith(_PIPELINE_PREFIX)}
    return prefixed or config


def _peft_alphas(path: Path, metadata: Mapping[str, str]) -> _Alphas | None:
    """PEFT's alpha settings: from the `lora_adapter_metadata` that diffusers writes into the file, else from the
    adapter_config.json that PEFT's `save_pretrained` writes beside its adapter_model.safetensors (whose tensors
    hold no alpha: without the config, a file trained with lora_alpha != r would apply at the wrong strength)."""
    raw, source = metadata.get("lora_adapter_metadata"), "its lora_adapter_metadata"
    config_file = path.with_name(_PEFT_CONFIG)
    if raw is None and path.name == _PEFT_FILE and config_file.is_file():
        raw, source = config_file.read_bytes(), str(config_file)  # bytes: read as UTF-8, whatever the locale
    if raw is None:
        return None
    try:
        config = parse_json_object(raw)
    except NotAJSONObject as exc:
        raise LoRAError(f"{path}: {source} is {exc}") from None
    config = _transformer_settings(config)
    if config.get("use_dora"):
        raise LoRAError(f"{path}: DoRA adapters (use_dora in {source}) are not supported; {_MERGE_IT}")
    alpha, patterns = config.get("lora_alpha"), config.get("alpha_pattern") or {}
    if alpha is not None and not is_finite_number(alpha):
        raise LoRAError(f"{path}: lora_alpha in {source} is {shown(alpha)}, not a number: {_EDITED}")
    numbers = isinstance(patterns, dict) and all(map(is_finite_number, patterns.values()))
    if not numbers:
        raise LoRAError(f"{path}: alpha_pattern in {source} is {shown(patterns)}, not an object of layer name "
                        f"patterns and numbers: {_EDITED}")  # fmt: skip
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise LoRAError(f"{path}: alpha_pattern in {source} holds {pattern!r}, which is no regular expression "
                            f"({exc}): {_EDITED}") from None  # fmt: skip
    rslora = config.get("use_rslora")
    if rslora is not None and not isinstance(rslora, bool):  # "false" would be true: another strength
        raise LoRAError(f"{path}: use_rslora in {source} is {shown(rslora)}, not true or false: {_EDITED}")
    return _Alphas(alpha, patterns, bool(rslora))
