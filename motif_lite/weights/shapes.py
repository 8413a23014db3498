"""Tensor names and shapes against the model a config builds on the `meta` device, before any weight is read: the
one comparison the loaders, `locate_sources` and `motif-lite check` make, and the words they say it in.

    model = build_model(config)                           # the transformer, every parameter on `meta`
    check_tensors(model, shapes, "x.safetensors")         # one CheckpointError listing every difference
    compare_shapes(expected_shapes(model), shapes).lines()  # the same differences, one short line each

Also the checks of a component's tensors that `locate_sources` and `check` share (`transformer_mismatch`,
`vae_mismatches`, `text_encoder_mismatches`) and ComfyUI's name prefix, read without it (`without_comfy_prefix`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, listed
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.weights.float8 import is_companion
from motif_lite.weights.keymap import to_model_names
from motif_lite.weights.safetensors_files import TensorRef, read_tensor_refs

Shapes = Mapping[str, tuple[int, ...]]
T = TypeVar("T")
MAX_LISTED = 20  # tensors listed per kind in a loader's error
MAX_NAMED = 3  # differences named in a one-line problem (`named`)


TRANSFORMER_CLASS = "MotifVideoTransformer3DModel"  # diffusers' `_class_name` in the transformer's config.json


def other_model_in_config(config: Mapping[str, object]) -> str | None:
    """The model a config.json's values describe when it is not the Motif-Video transformer (diffusers' class name,
    else transformers' model type: "AutoencoderKLWan" for the VAE's folder), else None. Saying it beats naming the
    first field of ours that such a config lacks."""
    kind = config.get("_class_name") or config.get("model_type")
    return None if kind in (None, TRANSFORMER_CLASS) else str(kind)


def build_model(config: TransformerConfig) -> MotifVideoTransformer:
    """The model with every parameter on `meta`: no memory, no random init."""
    with torch.device("meta"):
        return MotifVideoTransformer(config)


def assign_weights(model: MotifVideoTransformer, state: dict[str, torch.Tensor]) -> MotifVideoTransformer:
    """Put the checked tensors in place of the meta parameters (no copies)."""
    model.load_state_dict(state, strict=True, assign=True)
    return model.requires_grad_(False).eval()


def expected_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Every tensor `module`'s state dict holds, by name: what a file must hold to load into it."""
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


@dataclass(frozen=True)
class ShapeMismatch:
    """The tensors a file holds (`found`) against those a model expects: each list sorted by name."""

    expected: Shapes
    found: Shapes
    missing: list[str]
    unexpected: list[str]
    wrong: list[str]  # in both, with another shape

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong)

    def lines(self) -> list[str]:
        """One short line per difference: "missing x", "unexpected y", "z: file [2, 3], config [3, 3]"."""
        return (
            [f"missing {n}" for n in self.missing]
            + [f"unexpected {n}" for n in self.unexpected]
            + [f"{n}: file {list(self.found[n])}, config {list(self.expected[n])}" for n in self.wrong]
        )

    def raise_for(self, source: str, what: str = "the transformer config") -> None:
        """Raise one `CheckpointError` saying that `source` does not match `what`, listing every difference by kind;
        nothing when there is none."""
        wrong = [f"{n}: checkpoint {list(self.found[n])}, model {list(self.expected[n])}" for n in self.wrong]
        problems = [
            listing("missing tensors", self.missing),
            listing("unexpected tensors", self.unexpected),
            listing("tensors with the wrong shape", wrong),
        ]
        problems = [p for p in problems if p]
        if problems:
            raise CheckpointError(f"{source} does not match {what}:\n" + "\n".join(problems))


def compare_shapes(expected: Shapes, found: Shapes) -> ShapeMismatch:
    """The missing, unexpected and wrongly shaped tensors of `found` against `expected`."""
    wrong = sorted(n for n in expected.keys() & found.keys() if tuple(found[n]) != tuple(expected[n]))
    return ShapeMismatch(
        expected, found, sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys()), wrong
    )


def check_tensors(model: torch.nn.Module, shapes: Shapes, source: str, what: str = "the transformer config") -> None:
    """Raise one `CheckpointError` listing every missing, unexpected or wrongly shaped tensor of `model` (built from
    `what`)."""
    compare_shapes(expected_shapes(model), shapes).raise_for(source, what)


def listing(title: str, items: Sequence[str]) -> str:
    """ "3 missing tensors:" and the items, one an indented line, the first `MAX_LISTED` of them; "" for none."""
    if not items:
        return ""
    return f"{len(items)} {title}:\n  " + listed(items, MAX_LISTED, "\n  ", "... and {} more")


def named(problems: Sequence[str]) -> str:
    """The first few of `problems` on one line: "a; b; c; and 4 more"."""
    return listed(problems, MAX_NAMED, "; ")


def transformer_mismatch(config: TransformerConfig, shapes: Shapes) -> ShapeMismatch:
    """A transformer file's tensors (`shapes`, under the file's names) against the model `config` builds, in the
    cross-attention layout the names use, as `load_transformer` compares them. Raises `CheckpointError` for names
    that mix layouts."""
    shapes, layout = to_model_names(shapes)
    return compare_shapes(expected_shapes(build_model(config.replace(cross_attention_layout=layout))), shapes)


def vae_mismatches(config: object, found: Shapes) -> list[str]:
    """The VAE tensors `found` (names and shapes) against a Wan2.1 VAE built from `config` (a `WanVAEConfig`),
    under diffusers' names or Wan's own, whichever `found` uses (each difference said in its names)."""
    from motif_lite.vae.model import WanVAE
    from motif_lite.vae.wan_names import file_names

    with torch.device("meta"):
        expected = expected_shapes(WanVAE(config))
    names = file_names(expected, found, config)
    return compare_shapes({names[name]: shape for name, shape in expected.items()}, found).lines()


def text_encoder_mismatches(config: object, found: Shapes) -> list[str]:
    """The text encoder tensors `found` (names and shapes) against a T5Gemma2 encoder built from `config`."""
    from transformers import T5Gemma2Encoder

    with torch.device("meta"):
        expected = expected_shapes(T5Gemma2Encoder(config))
    # transformers renames the encoder's keys on load ("encoder." in the checkpoint, "text_model." in the module):
    # compare without those prefixes, and by shapes alone if the names still differ.
    problems = compare_shapes(_strip(expected), _strip(found)).lines()
    if problems and Counter(expected.values()) == Counter(tuple(s) for s in found.values()):
        problems = []
    return problems


def _strip(shapes: Shapes) -> dict[str, tuple[int, ...]]:
    return {re.sub(r"^(encoder\.)?(text_model\.)?", "", name): shape for name, shape in shapes.items()}


# What ComfyUI puts before the transformer's tensor names in a file it saves itself (a checkpoint save, a merge).
_COMFY_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def comfy_prefix(names: Collection[str]) -> str | None:
    """The prefix ComfyUI puts before every transformer tensor name in a file it saves, if these names have it."""
    return next((p for p in _COMFY_PREFIXES if names and all(name.startswith(p) for name in names)), None)


def without_comfy_prefix(tensors: Mapping[str, T], source: str) -> dict[str, T]:
    """A transformer file's tensors (`tensors`, by name) under the names motif-lite reads: where every weight's name
    carries ComfyUI's prefix (a file ComfyUI saved itself: a checkpoint save, a merge), that prefix is taken off
    every name that has it, as ComfyUI-GGUF and stable-diffusion.cpp read such files (a scaled fp8 file's marker
    may go without it). A file where only some weights carry it is neither layout: `CheckpointError`, naming
    `source` (read as it is, its unprefixed weights would be taken and the rest listed as unexpected)."""
    weights = [name for name in tensors if not is_companion(name)]
    prefix = comfy_prefix(weights)
    if prefix is not None:
        return {name.removeprefix(prefix): tensor for name, tensor in tensors.items()}
    for known in _COMFY_PREFIXES:
        carried = sum(name.startswith(known) for name in weights)
        if carried:
            raise CheckpointError(
                f"{source}: {carried} of its {len(weights)} weights' names start with {known!r} (ComfyUI's prefix, "
                "which a file ComfyUI saves puts before every name) and the rest do not: it is neither ComfyUI's "
                "layout nor diffusers'; give the transformer file as ComfyUI or diffusers saved it"
            )
    return dict(tensors)


def read_transformer_refs(files: list[Path], source: str) -> dict[str, TensorRef]:
    """The transformer's tensor names as read, from the headers of its safetensors `files`: without ComfyUI's prefix
    (`without_comfy_prefix`, naming `source`). Every reader of a transformer's safetensors names goes through this -
    the loader and each check before it - so that none of them compares the names as stored and refuses a file
    the loader takes."""
    return without_comfy_prefix(read_tensor_refs(files), source)
