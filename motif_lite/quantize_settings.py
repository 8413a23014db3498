"""--quantize and --text-encoder-quantize: the recipe each component is quantized to as it loads, checked before
any download (one the quantizer has for that component, and no GGUF of it besides), and the note that every run
quantizes it again, with the command that does it once (`with_quantize`).
"""

from __future__ import annotations

import dataclasses

from motif_lite.checkpoint import ModelSources
from motif_lite.choices import quantized_twice
from motif_lite.errors import ConfigError
from motif_lite.shell_syntax import quoted
from motif_lite.weight_checks import float8_notes


def with_quantize(
    sources: ModelSources, quantize: str | None, text_encoder_quantize: str | None = None
) -> ModelSources:
    """`sources` with the transformer quantized to the recipe `quantize` (--quantize; any letter case, the
    quantizer's aliases) as it loads, and the text encoder to its recipe `text_encoder_quantize`
    (--text-encoder-quantize), checked before any weights load: a recipe the quantizer has for that component, and
    safetensors to quantize (a GGUF's weights are quantized already). Each one's note says that every run does it
    again, and how long it takes. None: that component as it is."""
    sources = _with_text_encoder_quantize(sources, text_encoder_quantize)
    if quantize is None:
        return sources
    from motif_lite.quantize.on_load import is_slow_on_cpu

    recipe = transformer_recipe(quantize, sources.gguf_request)
    mine = sources.weight_files.get("transformer")
    made_from = mine or sources.model
    out = f"transformer-{recipe.name}.gguf"
    cost = (
        "its K-quants' search: minutes on a CPU; a GPU run searches on the GPU"
        if is_slow_on_cpu(recipe)
        else "about a minute on a CPU"
    )
    note = (
        f"the transformer is quantized to {recipe.name} as it loads, in every run ({cost}); to do it once: "
        f"python -m motif_lite.quantize {quoted(made_from)} --type {recipe.name} -o {out}, then --gguf {out}"
    )
    # An fp8 copy's weights do not stay in 8 bits, as its note says: they are quantized from their fp8 values.
    kept = float8_notes("transformer", mine) if mine is not None else []
    notes = tuple(said for said in sources.notes if said not in kept)
    return dataclasses.replace(sources, quantize=recipe.name, notes=(*notes, note))


def _with_text_encoder_quantize(sources: ModelSources, quantize: str | None) -> ModelSources:
    """`with_quantize` for the text encoder: the recipe checked, its note (with the quantizer's command that makes
    the file once) added."""
    if quantize is None:
        return sources
    from motif_lite.quantize.components import TEXT_ENCODER
    from motif_lite.quantize.on_load import is_slow_on_cpu

    given = sources.text_encoder_gguf
    recipe = text_encoder_recipe(quantize, None if given is None else str(given.path))
    # A file of the user's is quantized from the folder that links it beside -m's text_encoder/config.json (the
    # quantizer needs that config), as the run does.
    made_from = sources.root if "text_encoder" in sources.weight_files and sources.root else sources.model
    out = f"te-{recipe.name}.gguf"
    cost = (
        "its K-quants' search: minutes on a CPU; a GPU run searches on the GPU"
        if is_slow_on_cpu(recipe, TEXT_ENCODER)
        else "about a minute on a CPU"
    )
    note = (
        f"the text encoder is quantized to {recipe.name} as it loads, in every run ({cost}); to do it once: python -m "
        f"motif_lite.quantize {quoted(made_from)} --component text_encoder --type {recipe.name} -o {out}, then "
        f"--text-encoder-gguf {out}"
    )
    return dataclasses.replace(sources, text_encoder_quantize=recipe.name, notes=(*sources.notes, note))


def transformer_recipe(quantize: str, gguf: str | None):
    """The quantizer's recipe called `quantize`; a `ConfigError` listing them for another name, or when a GGUF
    (`gguf`, --gguf as given) is given too."""
    from motif_lite.quantize.recipes import get_recipe

    try:
        recipe = get_recipe(quantize)
    except ConfigError as exc:  # it lists the recipes
        raise ConfigError(f"--quantize: {exc}") from None
    if gguf is not None:
        raise ConfigError(quantized_twice("", quantize, gguf))
    return recipe


def text_encoder_recipe(quantize: str, text_encoder_gguf: str | None):
    """The quantizer's text encoder recipe called `quantize`; a `ConfigError` listing them for another name (a
    transformer-only type such as Q4_0 included), or when a text encoder GGUF is given too."""
    from motif_lite.quantize.text_recipes import get_text_recipe

    try:
        recipe = get_text_recipe(quantize)
    except ConfigError as exc:  # it lists the text encoder's recipes
        raise ConfigError(f"--text-encoder-quantize: {exc}") from None
    if text_encoder_gguf is not None:
        raise ConfigError(quantized_twice("text-encoder-", quantize, text_encoder_gguf))
    return recipe
