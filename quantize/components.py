"""What `--component` quantizes: where its tensors live in a checkpoint, what its GGUF file is called, its recipes.

The conversion itself (`convert.quantize_checkpoint`) is the same for every component; only these differ.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gguf import GGMLQuantizationType

from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.json_values import NotAJSONObject, parse_json_object
from motif_lite.weights.gguf_file import EXPECTED_ARCH, TEXT_ENCODER_ARCH
from motif_lite.weights.gguf_loader import CONFIG_KEY

from .recipes import get_recipe, plan_types, tensor_class
from .text_recipes import get_text_recipe, plan_text_types, text_tensor_class

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Component:
    """One quantizable component of a Motif-Video checkpoint."""

    name: str  # the --component value
    folder: str  # its folder in the official checkpoint layout
    weights_file: str  # the one safetensors file of that folder when it is not sharded
    arch: str  # general.architecture of its GGUF files
    config_key: str  # the metadata key that holds its config.json
    get_recipe: Callable[[str], Any]
    plan: Callable[[Shapes, Any, list[tuple[str, GGMLQuantizationType]]], dict[str, GGMLQuantizationType]]
    tensor_class: Callable[[str, tuple[int, ...]], str]
    default_recipe: str
    tensor_name: Callable[[str], str] = str  # a checkpoint key -> its GGUF tensor name
    check: Callable[[str | None, Shapes], None] | None = None  # (config.json text, shapes): raise if they do not fit


def _check_transformer(config_json: str | None, shapes: Shapes) -> None:
    """Every tensor against the transformer that the config beside the weights builds (inferred from the shapes
    when there is none), as the runtime's loader checks it: a VAE, a text encoder or any other model's weights
    would otherwise be written as a `motif_video` GGUF that fails only when a run loads it."""
    from motif_lite.config import TransformerConfig, config_from_weights
    from motif_lite.weights.keymap import to_model_names
    from motif_lite.weights.shapes import build_model, check_tensors

    shapes, layout = to_model_names(shapes)
    if config_json is None:
        try:
            config = config_from_weights(shapes, layout)
        except MotifLiteError as exc:  # it names the first tensor it needs and lacks
            raise CheckpointError(
                f"{exc}: these weights are not a whole Motif-Video transformer (for the text encoder's, add "
                "--component text_encoder)"
            ) from None
    else:
        try:
            values = parse_json_object(config_json)
        except NotAJSONObject as exc:  # a GGUF source's embedded copy (a file's is read by `sources._config_text`)
            raise CheckpointError(f"the transformer config that comes with the weights is {exc}") from None
        _refuse_other_model(values)
        source = "the transformer config.json"
        config = TransformerConfig.from_dict(values, source=source).replace(cross_attention_layout=layout)
    what = "the transformer config that comes with it" if config_json is not None else "the config its shapes imply"
    check_tensors(build_model(config), shapes, "the source", what)


def _refuse_other_model(config: dict[str, Any]) -> None:
    """Name the model that a config.json describes when it is not the transformer (the VAE's or the text encoder's
    folder given as SRC): better than the first field of ours that it lacks."""
    from motif_lite.weights.shapes import TRANSFORMER_CLASS, other_model_in_config

    kind = other_model_in_config(config)
    if kind is None:
        return
    if kind == "t5gemma2_encoder":
        raise CheckpointError(
            "these are the text encoder's weights (config.json: t5gemma2_encoder); quantize them with "
            "--component text_encoder"
        )
    raise CheckpointError(
        f"the config.json beside the weights describes {kind}, not the Motif-Video transformer "
        f"({TRANSFORMER_CLASS}); pass the checkpoint folder or its transformer/ folder"
    )


def _text_tensor_name(name: str) -> str:
    from motif_lite.encoders.text_config import model_key

    return model_key(name)


def _check_text_encoder(config_json: str | None, shapes: Shapes) -> None:
    """Every tensor against the `T5Gemma2Encoder` its config builds (on the meta device), before any is read."""
    from motif_lite.encoders.text_config import config_from_json, meta_encoder
    from motif_lite.weights.shapes import check_tensors

    if config_json is None:
        raise CheckpointError(
            "the text encoder's config.json is missing beside its weights; quantize the checkpoint folder or its "
            "text_encoder/ folder (the GGUF embeds the config, which loading needs)"
        )
    _refuse_other_text_config(config_json)
    config = config_from_json(config_json, "the text encoder config.json")
    check_tensors(meta_encoder(config), shapes, "the text encoder weights", "the text encoder config")


def _refuse_other_text_config(config_json: str) -> None:
    """Name the model a config.json describes when it is not the text encoder (the transformer's or the VAE's folder
    given with --component text_encoder): better than the text encoder field it lacks."""
    from motif_lite.weights.shapes import TRANSFORMER_CLASS

    try:
        values = parse_json_object(config_json)
    except NotAJSONObject:
        return  # config_from_json says what is wrong with it
    kind = values.get("_class_name") or values.get("model_type")
    if kind == TRANSFORMER_CLASS:
        raise CheckpointError(
            f"these are the transformer's weights (config.json: {kind}); to quantize them, leave out --component "
            "text_encoder"
        )
    if kind is not None and kind != TEXT_ENCODER_ARCH:
        raise CheckpointError(
            f"the config.json beside the weights describes {kind}, not the T5Gemma2 text encoder; pass the checkpoint "
            "folder or its text_encoder/ folder"
        )


TRANSFORMER = Component(
    name="transformer",
    folder="transformer",
    weights_file="diffusion_pytorch_model.safetensors",
    arch=EXPECTED_ARCH,
    config_key=CONFIG_KEY,  # as the loader reads it
    get_recipe=get_recipe,
    plan=plan_types,
    tensor_class=tensor_class,
    default_recipe="Q4_K_M",
    check=_check_transformer,
)
TEXT_ENCODER = Component(
    name="text_encoder",
    folder="text_encoder",
    weights_file="model.safetensors",
    arch=TEXT_ENCODER_ARCH,
    config_key=f"{TEXT_ENCODER_ARCH}.config_json",
    get_recipe=get_text_recipe,
    plan=plan_text_types,
    tensor_class=text_tensor_class,
    default_recipe="Q8_0",
    tensor_name=_text_tensor_name,
    check=_check_text_encoder,
)
COMPONENTS = {c.name: c for c in (TRANSFORMER, TEXT_ENCODER)}
