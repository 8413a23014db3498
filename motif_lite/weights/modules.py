"""Swapping one module of a model for another by its dotted name, as the loaders do with the layers they keep in
a packed or 8-bit form."""

from __future__ import annotations

from torch import nn


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put `module` where `model.get_submodule(name)` is (`blocks.0.ff.net.2`: attribute `2` of `blocks.0.ff.net`)."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)
