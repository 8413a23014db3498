"""LoRA files for the transformer: read diffusers/PEFT and kohya/ComfyUI files and check them against the model's
linear layers and its patch embedder's Conv3d, before any model weight is read (weights/lora_apply.py then merges
or attaches them). The LoRAs as given are `LoRASpec`s (weights/lora_specs.py); what a checked file holds,
`LoRAFile` (weights/lora_updates.py), is made layer by layer in weights/lora_parts.py; the errors are in
weights/lora_errors.py.

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
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from motif_lite.errors import MotifLiteError, counted
from motif_lite.io.file_kinds import PICKLE_SUFFIXES, file_kind, starts_as_gguf
from motif_lite.shell_syntax import on_windows, quoted
from motif_lite.weights.float8 import Float8Linear
from motif_lite.weights.keymap import LAYOUT_PATTERNS, to_checkpoint_name
from motif_lite.weights.lora_errors import EDITED, MERGE_IT, LoRAError, PackedDiffError, UnreadableLoRAError
from motif_lite.weights.lora_parts import (
    LYCORIS_PARTS,
    check_finite,
    layer_product,
    layer_update,
    parts_fit,
    peft_alphas,
)
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.lora_updates import LoRAFile, WeightDiff, update_shape
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
_OTHER_ADAPTERS = [
    (re.compile(r"\.(hada_t[12]|lokr_t[12])$"), "a LyCORIS LoHa or LoKr with a Tucker core (hada_t1, lokr_t2, ...)",
     MERGE_IT),
    (re.compile(r"\.(dora_scale|lora_magnitude_vector)"), "a DoRA", MERGE_IT),
    (re.compile(r"\.lora_mid\."), "a LyCORIS LoCon with a Tucker middle (lora_mid)", MERGE_IT),
    (re.compile(r"\.lora_(B|up)\.bias$"), "a LoRA with biases (PEFT's lora_bias)", MERGE_IT),
    (re.compile(r"\.lora_[AB]\.[^.]+\.weight$"), "a PEFT model's state dict (the adapter's name is in the keys)",
     "save the adapter with PEFT's save_pretrained or get_peft_model_state_dict, which leave the name out"),
]  # fmt: skip
# The same cross-attention projection under the diffusers layout and under the two shared layouts.
_CROSS_ALIASES = {"cross_attn.to_q": "cross_attn.query_proj", "cross_attn.to_out.0": "cross_attn.out_proj"}


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
        peft_alphas(spec.path, metadata)
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
    alphas = peft_alphas(spec.path, metadata) if fmt == "peft" else None
    lycoris = {module: parts for module, parts in pairs.items() if any(p.startswith(LYCORIS_PARTS) for p in parts)}
    updates = [
        layer_update(spec, module, parts, targets[module], alphas, spelled[module])
        for module, parts in sorted(pairs.items())
        if module not in lycoris
    ]
    products = [layer_product(spec, module, parts, targets[module]) for module, parts in sorted(lycoris.items())]
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
            raise LoRAError(f"{spec.path}: the full difference {key} is {diff.dtype}, not floats: {EDITED}")
        check_finite(spec, name, {"full difference": diff})
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
    if len(complete) < max(2, len(pairs)) or any(parts_fit(p, targets[m]) for m, p in complete.items()):
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


@contextlib.contextmanager
def _opened_lora(path: Path) -> Iterator[Any]:
    """The LoRA file `path` opened with `safe_open`; a file that is missing or no readable safetensors file (a
    pickle, a GGUF, a web page, ...), here or while the block reads it, as a `LoRAError` saying what it is."""
    if not path.is_file():
        raise LoRAError(f"LoRA file not found: {path}")
    # safetensors words a file it may not open as "No such file or directory": said as what it is, a file this user
    # may not read (a server's job was told the file it names is no readable safetensors LoRA).
    try:
        path.open("rb").close()
    except PermissionError:
        raise UnreadableLoRAError(path, _unreadable(path)) from None
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except (SafetensorError, OSError) as exc:
        if path.suffix.lower() in PICKLE_SUFFIXES:  # loading a pickle can run code: never done here
            raise LoRAError(
                f"{path} is a PyTorch pickle ({path.suffix}), which motif-lite does not load (loading one can run "
                f"code); convert it once where you trust it: {_conversion_command(path)}"
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


def _unreadable(path: Path) -> str:
    """Why the LoRA file `path` could not be opened (a PermissionError) and what to do. On Windows that is most often
    another program holding it open without sharing it (a browser or sync client still writing it), and there is
    no chmod: the advice there names both causes in Windows' words."""
    if on_windows():
        return (
            f"{path} cannot be read: another program has it open without sharing it (a download or copy still "
            "writing it, a sync or backup tool), or this user may not read it: close that program, or give your "
            "user read permission (the file's Properties, Security tab)"
        )
    return (
        f"{path} cannot be read: this process's user may not read it (its permissions); give that user read "
        f"permission (chmod a+r {quoted(str(path))}), or run as a user that may"
    )


def _conversion_command(pickle: Path) -> str:
    """The command that saves the pickle LoRA `pickle` as a .safetensors file beside it. The paths are arguments of
    the command, quoted for the user's shell, not text of the Python code: written into the code's string literals,
    a Windows path under `C:\\Users` was a syntax error (`\\U` starts an escape there), and a quote or a `$` in a
    path broke the command too."""
    code = (
        "import sys, torch, safetensors.torch as s; "
        "s.save_file(torch.load(sys.argv[1], weights_only=True), sys.argv[2])"
    )
    return f'python -c "{code}" {quoted(str(pickle))} {quoted(str(pickle.with_suffix(".safetensors")))}'


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
    return "lycoris" if any(part.startswith(LYCORIS_PARTS) for _, part in parsed.values()) else fmt


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
