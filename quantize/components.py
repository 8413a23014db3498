"""What `--component` quantizes: where its tensors live in a checkpoint, what its GGUF file is called, its recipes.

The conversion itself (`convert.quantize_checkpoint`) is the same for every component; only these differ.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gguf import GGMLQuantizationType

from motif_lite.errors import CheckpointError
from motif_lite.weights.gguf_file import EXPECTED_ARCH, TEXT_ENCODER_ARCH

from .recipes import get_recipe, plan_types, tensor_class
from .text_recipes import get_text_recipe, plan_text_types, text_tensor_class

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Component:
    """One quantizable component of a Motif-Video checkpoint."""

    name: str  # the --component value
    folder: str  # its folder in the official checkpoint layout
    arch: str  # general.architecture of its GGUF files
    config_key: str  # the metadata key that holds its config.json
    get_recipe: Callable[[str], Any]
    plan: Callable[[Shapes, Any, list[tuple[str, GGMLQuantizationType]]], dict[str, GGMLQuantizationType]]
    tensor_class: Callable[[str, tuple[int, ...]], str]
    default_recipe: str
    tensor_name: Callable[[str], str] = str  # a checkpoint key -> its GGUF tensor name
    check: Callable[[str | None, Shapes], None] | None = None  # (config.json text, shapes): raise if they do not fit


def _text_tensor_name(name: str) -> str:
    from motif_lite.encoders.text_gguf import model_key

    return model_key(name)


def _check_text_encoder(config_json: str | None, shapes: Shapes) -> None:
    """Every tensor against the `T5Gemma2Encoder` its config builds (on the meta device), before any is read."""
    from motif_lite.encoders.text_gguf import config_from_json, meta_encoder
    from motif_lite.weights.loader import check_tensors

    if config_json is None:
        raise CheckpointError(
            "the text encoder's config.json is missing beside its weights; quantize the checkpoint folder or its "
            "text_encoder/ folder (the GGUF embeds the config, which loading needs)"
        )
    config = config_from_json(config_json, "the text encoder config.json")
    check_tensors(meta_encoder(config), shapes, "the text encoder weights", "the text encoder config")


TRANSFORMER = Component(
    name="transformer",
    folder="transformer",
    arch=EXPECTED_ARCH,
    config_key=f"{EXPECTED_ARCH}.config_json",
    get_recipe=get_recipe,
    plan=plan_types,
    tensor_class=tensor_class,
    default_recipe="Q4_K_M",
)
TEXT_ENCODER = Component(
    name="text_encoder",
    folder="text_encoder",
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
