"""The values of the flags that name a choice (--sampling-method, --guidance, --attention, --attention-backend,
--kernels, --quantize, --text-encoder-quantize), checked as argparse reads them: any letter case, and other tools'
names (ComfyUI's samplers, SageAttention, stable-diffusion.cpp's --guidance scale) get the flag or the name they
mean."""

from __future__ import annotations

import argparse

from motif_lite.choices import (
    ATTENTION_BACKENDS,
    ATTENTION_MODES,
    GUIDANCE_METHODS,
    KERNEL_BACKENDS,
    SAMPLER_ALIASES,
    SAMPLERS,
    choice_name,
    misspelled_guidance,
    sampler_hint,
)
from motif_lite.errors import ConfigError


def sampler(text: str) -> str:
    """ComfyUI's `dpmpp_2m` (and other spellings) as `dpm++2m`, its `uni_pc` and `uni_pc_bh2` as `unipc`; argparse's
    choices name anything else, and ours closest to another tool's sampler that is not here (sd.cpp's euler_a) or
    to a typo (eulr)."""
    name = choice_name(text, tuple(SAMPLERS), SAMPLER_ALIASES)
    if name not in SAMPLERS and (hint := sampler_hint(text)):
        choices = ", ".join(repr(ours) for ours in SAMPLERS)
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices}){hint}")
    return name


def kernel_backend(text: str) -> str:
    """--kernels' backend in any letter case (Triton, TORCH), as --dtype and --guidance take theirs."""
    return choice_name(text, KERNEL_BACKENDS)


def guidance(text: str) -> str:
    """The guidance method; a number is stable-diffusion.cpp's `--guidance` (a scale), which is --cfg-scale here."""
    try:
        float(text)
    except ValueError:
        name = choice_name(text, GUIDANCE_METHODS)
        if name not in GUIDANCE_METHODS and (typo := misspelled_guidance(text)):
            choices = ", ".join(repr(method) for method in GUIDANCE_METHODS)
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {choices}){typo}") from None
        return name
    raise argparse.ArgumentTypeError(f"takes the method, apg or cfg; the guidance scale is --cfg-scale {text}")


def quantize_type(text: str) -> str:
    """--quantize's type as the quantizer names its recipe (any letter case, its aliases: q4_k is Q4_K_M), or the
    argparse error listing them."""
    from motif_lite.quantize.recipes import get_recipe

    try:
        return get_recipe(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def text_encoder_quantize_type(text: str) -> str:
    """--text-encoder-quantize's type as the quantizer names its text encoder recipe (any letter case, q4_k is
    Q4_K_M), or the argparse error listing them."""
    from motif_lite.quantize.text_recipes import get_text_recipe

    try:
        return get_text_recipe(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


SAGE_HINT = "8-bit attention (SageAttention's scheme, in motif-lite's own kernel; lossy) is --attention int8"


def attention(text: str) -> str:
    """--attention's mode; SageAttention's name (ComfyUI's --use-sage-attention) and the exact kernels' names (which
    are --attention-backend's) get the flag they mean."""
    if text.lower().startswith("sage"):
        raise argparse.ArgumentTypeError(f"{text}: {SAGE_HINT}")
    if text in ATTENTION_BACKENDS and text != "auto":
        raise argparse.ArgumentTypeError(
            f"{text} is an exact attention kernel: --attention-backend {text} (--attention is exact or int8)"
        )
    return choice_name(text, ATTENTION_MODES)  # INT8, Exact: any letter case, as the other choices


def attention_backend(text: str) -> str:
    """--attention-backend's kernel; SageAttention's name or int8 (8-bit attention is --attention int8) get a hint."""
    if text.lower().startswith("sage") or text.lower() == "int8":
        raise argparse.ArgumentTypeError(f"{text}: {SAGE_HINT}; --attention-backend chooses among exact kernels")
    return choice_name(text, ATTENTION_BACKENDS)  # SDPA, Flash: any letter case
