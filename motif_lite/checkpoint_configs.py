"""What a checkpoint's config files say (`CheckpointConfigs.read`): model_index.json and the transformer's,
scheduler's, guider's, VAE's, text encoder's, tokenizer's and image processor's JSON files, each parsed and checked
once when read, so that a broken config fails before any weights load. `motif_lite.settings` decides each setting
from them where the user gives none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from motif_lite.config import TransformerConfig, diffusers_values
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError
from motif_lite.json_values import read_json_object
from motif_lite.sampling.guidance import GuiderConfig, guider_config_file, guider_from_values
from motif_lite.sampling.schedule import DynamicShift, ScheduleOptions, dynamic_shift, schedule_options, scheduler_shift
from motif_lite.vae.config import WanVAEConfig

REFERENCE_SCHEDULER = "FlowMatchEulerDiscreteScheduler"


# Components whose config file names its class (`_class_name`), and the class when it does not. diffusers builds
# the class model_index.json lists and hands it the file's values, so the two must agree.
_CLASS_NAMED = {"scheduler": REFERENCE_SCHEDULER, "guider": None}


@dataclass(frozen=True)
class CheckpointConfigs:
    """What the checkpoint's config files say; None (or False) where a file is absent. Reads no weights.

    Every file is parsed and validated when read, so a broken config fails before anything loads.
    """

    root: Path | None = None
    transformer: TransformerConfig | None = None
    scheduler: dict[str, Any] | None = None  # scheduler/scheduler_config.json as diffusers reads it
    scheduler_shift: float | None = None  # the shift its scheduler class applies (None: not set)
    schedule: ScheduleOptions = ScheduleOptions()  # what else the scheduler config changes in the schedule
    dynamic: DynamicShift | None = None  # its use_dynamic_shifting: the shift follows the video's size
    guider: GuiderConfig | None = None
    vae: WanVAEConfig | None = None
    # text_encoder/config.json's values, checked (`check_text_encoder_config`); the planner and the time estimate
    # count the encoder's sizes from them rather than reading the file again
    text_encoder_config: dict[str, Any] | None = None
    # model_index.json's object as read (None: absent, or not read), which finding the folder again need not read
    index: dict[str, Any] | None = None

    @property
    def text_encoder(self) -> bool:
        """Whether text_encoder/config.json is present."""
        return self.text_encoder_config is not None

    @classmethod
    def read(
        cls,
        root: str | Path | None,
        *,
        text_encoder_read: dict[str, Any] | None = None,
        index_read: dict[str, Any] | None = None,
        files_read: Mapping[str, dict[str, Any] | None] | None = None,
    ) -> CheckpointConfigs:
        """Read the configs under a checkpoint folder (the official layout); an empty result for None. Each file is
        read once: a file read twice could change between the reads (an edit under way), and each read of a Hub
        file may be a network round trip. `text_encoder_read`: text_encoder/config.json's values where a caller
        read the file already (the check of a --text-encoder-gguf against it), checked here as the file would be;
        `index_read`: model_index.json's object where a caller read it already (finding the checkpoint);
        `files_read`: the JSON objects of files a caller read already, by their path under `root`
        ("vae/config.json"; None: the file was absent), checked here as the files would be (`motif-lite check`
        reads each file for its own findings first)."""
        if root is None:
            return cls()
        root = Path(root)
        known = {} if files_read is None else files_read

        def values(rel: str, what: str, error: type[MotifLiteError] = ConfigError) -> dict[str, Any] | None:
            if rel in known:
                return known[rel]
            path = root / rel
            return read_json_object(path, what, error) if path.is_file() else None

        transformer = root / "transformer" / "config.json"
        scheduler = root / "scheduler" / "scheduler_config.json"
        vae = root / "vae" / "config.json"
        index = root / "model_index.json"
        index_values = index_read if index_read is not None else values("model_index.json", "model index")
        listed = index_values or {}
        scheduler_values = values("scheduler/scheduler_config.json", "scheduler config")
        guider = guider_config_file(root / "guider")
        guider_values = values(guider.relative_to(root).as_posix(), "guider config")
        read = {"scheduler": (scheduler, scheduler_values), "guider": (guider, guider_values)}
        _check_listed_classes(index, listed, read)
        scheduler_config = None if scheduler_values is None else diffusers_values(scheduler_values)
        transformer_values = values("transformer/config.json", "transformer config")
        vae_values = values("vae/config.json", "VAE config", CheckpointError)
        text_encoder = root / "text_encoder" / "config.json"
        text_encoder_seen = "text_encoder/config.json" in known
        if text_encoder_read is None and text_encoder_seen:
            text_encoder_read = known["text_encoder/config.json"]
        configs = cls(
            root=root,
            transformer=None
            if transformer_values is None
            else TransformerConfig.from_dict(transformer_values, source=str(transformer)),
            scheduler=scheduler_config,
            scheduler_shift=None if scheduler_config is None else scheduler_shift(scheduler_config, str(scheduler)),
            schedule=schedule_options(scheduler_config, str(scheduler)),
            dynamic=dynamic_shift(scheduler_config, str(scheduler)),
            guider=None if guider_values is None else guider_from_values(guider_values, guider),
            vae=None if vae_values is None else WanVAEConfig.from_dict(vae_values, source=str(vae)),
            text_encoder_config=_text_encoder_values(text_encoder, text_encoder_read, text_encoder_seen),
            index=index_values,
        )
        values("tokenizer/tokenizer_config.json", "tokenizer config")  # a broken file: named now, not by transformers
        values("feature_extractor/preprocessor_config.json", "image processor config")
        return configs


def _check_listed_classes(
    index: Path, listed: dict[str, Any], read: Mapping[str, tuple[Path, dict[str, Any] | None]]
) -> None:
    """The scheduler and guider class model_index.json (`index`, whose object is `listed`) lists against the one
    their config file names (`read`: each component's file and its values as read, None where absent): diffusers
    would build the listed class with the file's values (e.g. APG with a CFG file's scale), motif-lite the file's."""
    for component, default in _CLASS_NAMED.items():
        entry, (path, values) = listed.get(component), read[component]
        # The values as read, not whether the file is there now: one made since was not read (values None).
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str) and values is not None):
            continue
        named = values.get("_class_name", default)
        if named is not None and named != entry[1]:
            raise ConfigError(
                f"{index} lists the {component} as {entry[1]}, but {path} is a {named} config: diffusers "
                f"would build {entry[1]} from it; make the two agree"
            )


def _text_encoder_values(path: Path, read: dict[str, Any] | None, was_read: bool = False) -> dict[str, Any] | None:
    """`path`'s values (`read`: as a caller read them already; `was_read`: a caller looked, and `read` None means
    the file was absent), None where it is not there, with the sizes the text encoder is built from checked (a wrong
    one crashed the cost estimate)."""
    from motif_lite.encoders.text_config import check_text_encoder_config, checked_text_encoder_values

    if read is None and (was_read or not path.is_file()):
        return None
    return check_text_encoder_config(path) if read is None else checked_text_encoder_values(read, str(path))
