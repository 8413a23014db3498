"""A diffusers user's habits answered by `MotifVideoPipeline`: `from_pretrained`, `pipe.to(...)` and `pipe(...)`
say the line that does the same here, and a diffusers component or method set or read that the pipeline lacks says
what does that instead (worded in `from_diffusers`); its loaded transformer's parts, set one by one, are refused."""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import TYPE_CHECKING

from motif_lite.choices import MOTIF_REPO
from motif_lite.errors import ConfigError
from motif_lite.pipeline.from_diffusers import call_advice, is_same_device, load_advice, method_advice, to_arguments
from motif_lite.pipeline.recipe import LoadedTransformer
from motif_lite.request import RequestError

if TYPE_CHECKING:  # generation.py builds MotifVideoPipeline on this class: imported for the annotation only
    from motif_lite.pipeline.generation import MotifVideoPipeline


# The pipeline's properties read through its `LoadedTransformer` (its model as `transformer`, the rest by their
# names): assigned one by one, they would part from the rest.
_LOADED_PARTS = frozenset(
    "transformer" if field.name == "model" else field.name for field in dataclasses.fields(LoadedTransformer)
)


class DiffusersHabits:
    """`MotifVideoPipeline`'s answers to diffusers' calls and attributes: a part of that class, which sets what
    they read (`device`, `dtype`, `load_keywords`)."""

    @classmethod
    def from_pretrained(cls, model: object = None, **kwargs: object) -> None:
        """Called as diffusers' `MotifVideoPipeline.from_pretrained(repo, torch_dtype=...)` is: says the
        `load_pipeline` line instead, and what its keywords are here."""
        from motif_lite.pipeline.loading import load_pipeline  # loading builds this class: imported when called

        taken = inspect.signature(load_pipeline).parameters
        given = {name: value for name, value in kwargs.items() if name in taken}  # written into the line
        others = {name: value for name, value in kwargs.items() if name not in taken}
        shown = repr(str(model)) if isinstance(model, str | os.PathLike) else repr(MOTIF_REPO)
        arguments = ", ".join([shown, *(f"{name}={value!r}" for name, value in given.items())])
        lines = [
            f"MotifVideoPipeline is loaded by load_pipeline, not from_pretrained: pipe = load_pipeline({arguments}), "
            "with load_pipeline from motif_lite (help(load_pipeline) lists its arguments)"
        ]
        if others:
            lines.append(load_advice(others, load_pipeline))
        raise ConfigError("\n".join(lines))

    def to(self, *args: object, **kwargs: object) -> MotifVideoPipeline:
        """diffusers' `pipe.to("cuda")`, `pipe.to(torch.float16)`: this pipeline where it is on that device in that
        dtype already (the habit moves nothing), else a `ConfigError` with the `load_pipeline` line that loads it
        there. A pipeline is not moved: its memory plan, kernels and attention are chosen for its device and dtype
        as it loads."""
        device, dtype = to_arguments(args, kwargs)
        if (device is None or is_same_device(device, self.device)) and (dtype is None or dtype == self.dtype):
            return self
        keywords = self.load_keywords()
        if device is not None:
            keywords["device"] = repr(str(device))
        if dtype is not None:
            keywords["dtype"] = str(dtype)
        line = ", ".join(f"{name}={value}" for name, value in keywords.items())
        raise ConfigError(
            f"this pipeline was loaded on {self.device} in {self.dtype} and is not moved (its memory plan, kernels "
            f"and attention were chosen for them): load it there instead, pipe = load_pipeline({line})"
        )

    def __call__(self, *args: object, **kwargs: object) -> None:
        """Called as a diffusers pipeline is: says the `generate` line that makes that video."""
        raise RequestError(call_advice(args, kwargs))

    def __setattr__(self, name: str, value: object) -> None:
        """Refuses diffusers' components and methods (`pipe.scheduler = UniPCMultistepScheduler(...)`,
        `pipe.guider = ...`): nothing here reads them, so the video would not change; says what does instead.
        Refuses the loaded transformer's parts too (`pipe.transformer = ...`): they are one value, replaced whole."""
        if name in _LOADED_PARTS:
            raise AttributeError(
                f"pipe.{name} is read-only: it comes with the loaded transformer; pipe.set_loras(...) loads it "
                "again with other LoRAs, load_pipeline(...) or MotifVideoPipeline(transformer, ...) makes another "
                "pipeline",
                name=name,
                obj=self,
            )
        advice = method_advice(name)
        if advice is not None:
            raise AttributeError(
                f"pipe.{name} = ... would change nothing: MotifVideoPipeline has no {name} (diffusers' pipelines do); "
                f"{advice}",
                name=name,
                obj=self,
            )
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> object:
        """Only for names the pipeline lacks: diffusers' methods (`to`, `enable_model_cpu_offload`, ...) say what
        does the same here."""
        advice = method_advice(name)
        message = f"{type(self).__name__!r} object has no attribute {name!r}"
        raise AttributeError(message if advice is None else f"{message}: {advice}", name=name, obj=self)
