"""What a `run`'s command line gave, read once its flags are parsed: which flags it typed and every flag's default
(`RunInputs`, kept on `args` by `run_inputs`), the files whose values fill the flags not typed (`fill_unset`), and a
length in seconds given to --video-frames, counted at the rate the run will have (`refuse_seconds`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from motif_lite.cli.flag_numbers import SecondsGiven
from motif_lite.cli.run_flags import run_only_parser
from motif_lite.frame_rates import rate_said
from motif_lite.request import MOST_FRAMES, REQUEST_DEFAULTS, countable_frames, run_dest

if TYPE_CHECKING:
    from motif_lite.cli.settings_from import Recalled
    from motif_lite.io.latents import SavedLatents
    from motif_lite.settings import Given


@dataclass
class RunInputs:
    """Where a `run`'s settings came from, beside the values its flags hold in `args`: the command line as typed
    (which flags it gave), the files of the layer under it (the flags --settings-from, --resume and --extend filled
    from their files, and what --settings-from or --resume took from its file) and the first step a resumed run
    samples. One per command, kept on `args` by `run_inputs`."""

    argv: Sequence[str] | None  # as `cli.main` keeps it; None for a Namespace no command line made (a test's)
    recalled: Recalled | None = None  # set by `run` (--settings-from) or `resume_args` (--resume)
    resumed_at: int = 0  # --resume: the steps the stopped run sampled, so the first one this run samples
    # --resume with the stopped run's dtype: its text encoder's ("bf16" beside a default fp32, which the file's
    # dtype alone would load in fp32); None: as the dtype gives (`dtypes.text_encoder_dtype`)
    text_encoder_dtype: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # dest -> the name of the file under it (`took_from`)
    # --resume's file as `decode_in_one_process` read it (for --gpus N, ...): `resume_args` takes it, not reading the
    # whole file again; None: not read yet
    resume_read: SavedLatents | None = None
    _flags: tuple[Mapping[str, object], frozenset[str]] | None = field(default=None, init=False, repr=False)

    @property
    def typed(self) -> frozenset[str]:
        """The dests of the run flags the command line gave, also where it gave the default."""
        return self._parsed()[1]

    @property
    def defaults(self) -> Mapping[str, object]:
        """Every run flag's default, by dest."""
        return self._parsed()[0]

    def _parsed(self) -> tuple[Mapping[str, object], frozenset[str]]:
        """(defaults, typed), parsed from `argv` once: --settings-from, --resume, --extend and the size notes each
        ask, and the command line does not change. Refused without `argv`: an empty "typed" would let a file's
        values replace every flag typed."""
        if self._flags is None:
            if self.argv is None:
                raise ValueError("RunInputs needs args.argv, the command line as typed (cli.main keeps it)")
            self._flags = _parse_run_flags(list(self.argv))
        return self._flags

    @property
    def taken(self) -> frozenset[str]:
        """The request fields the file layer gave (none without one)."""
        return self.recalled.taken if self.recalled is not None else frozenset()

    def took_from(self, file: str | Path, dests: Iterable[str]) -> None:
        """Keep that `file`, a layer under the command line, holds values for the flags `dests` (it gave those not
        typed), for the settings' sources. The first file under a flag is the nearest: --settings-from's video
        fills the flags before --extend's clip."""
        for dest in dests:
            self.files.setdefault(dest, Path(file).name)

    def given(self) -> Given:
        """Where the settings the table shows came from: the fields the command line typed and the file under each
        field a file holds (`took_from`); `resolve_settings` and `Settings.with_given` take it."""
        from motif_lite.settings import ROW_FIELDS, Given

        fields = {name: run_dest(name) for row in ROW_FIELDS.values() for name in row}  # field -> dest
        typed = self.typed
        return Given(
            flags=frozenset(name for name, dest in fields.items() if dest in typed),
            files={name: self.files[dest] for name, dest in fields.items() if dest in self.files},
        )


def run_inputs(args: argparse.Namespace) -> RunInputs:
    """`args`' `RunInputs`, made on first use from `args.argv` (which `cli.main` sets) and kept as
    `args.run_inputs`: the one place a Namespace that `cli.main` never saw (a test's) gets its "nothing known"."""
    inputs = vars(args).get("run_inputs")
    if inputs is None:
        inputs = args.run_inputs = RunInputs(vars(args).get("argv"))
    return inputs


def given_sources(args: argparse.Namespace) -> Given:
    """Where `args`' settings came from (`RunInputs.given`), for a refusal, the notes and the table to name; a
    Namespace no command line made (a caller's own, not `cli.main`'s) gave no flags or files: nothing to name."""
    from motif_lite.settings import Given

    return run_inputs(args).given() if vars(args).get("argv") is not None else Given()


def fill_unset(
    args: argparse.Namespace, values: Mapping[str, object], given: frozenset[str], file: str | Path
) -> frozenset[str]:
    """Put `values` (by dest) into `args` for the flags not in `given`: a lower layer, `file` (--settings-from's
    video, --resume's latents, --extend's clip), under the flags typed; the settings table names it as the source of
    what it filled, and as what a flag typed replaced. -> the dests it filled."""
    filled = frozenset(values) - given
    for dest in filled:
        setattr(args, dest, values[dest])
    run_inputs(args).took_from(file, [dest for dest, value in values.items() if value is not None])  # None: unset
    return filled


def _parse_run_flags(argv: list[str]) -> tuple[Mapping[str, object], frozenset[str]]:
    parser = run_only_parser()
    defaults = vars(parser.parse_args([]))
    # None marks "not given": a flag on the command line never parses to None (each type returns a value), and an
    # `append` flag (--lora) needs None or a list as its default to append to (a sentinel object crashes argparse).
    parser.set_defaults(**dict.fromkeys(defaults))
    parsed, _ = parser.parse_known_args(argv[argv.index("run") + 1 :] if "run" in argv else argv)
    given = frozenset(dest for dest, value in vars(parsed).items() if value is not None)
    return MappingProxyType(defaults), given


def refuse_seconds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit through `parser.error`, as for a bad value, where --video-frames was given a length in seconds."""
    given = getattr(args, "video_frames", None)
    if isinstance(given, SecondsGiven):
        parser.error(f"argument --video-frames: counts frames, not seconds: {seconds_in_frames(given.seconds, args)}")


def seconds_in_frames(seconds: float | None, args: argparse.Namespace) -> str:
    """What a length of `seconds` (None: not a number) is in --video-frames for this run: the frames at the --fps
    given (the default where not given or the command has none, as verify). One rule for `refuse_seconds` and the
    hint on other tools' --seconds/--duration, so that both give one count."""
    if (source := _rate_source(args)) is not None:  # the rate is read later, from that clip or file: no count yet
        return (
            f"the run plays at the rate of {source}, read later: give a number of frames (4k+1), or add --fps R "
            f"to have {seconds:g} s counted at R fps"
            if seconds is not None and seconds > 0
            else f"the run plays at the rate of {source}, read later: give a number of frames (4k+1)"
        )
    fps = getattr(args, "fps", REQUEST_DEFAULTS.fps)
    # nan, 0 and a negative length have no frame count; a bad --fps none either (it is refused later)
    if seconds is None or not seconds > 0 or not 0 < fps < float("inf"):
        return "a length is a number of frames (4k+1) at --fps"
    if (frames := countable_frames(seconds, fps)) is None:  # past any video (1e30s): no count to try, which the
        return (  # run would refuse in turn
            f"{seconds:g} s at {rate_said(fps)} is more frames than a video may have ({MOST_FRAMES:,} at most, "
            "at the smallest size)"
        )
    rate = "; --fps sets the rate" if hasattr(args, "fps") else ""  # verify has no --fps
    return f"{seconds:g} s at {rate_said(fps)} is --video-frames {frames} (4k+1 frames{rate})"


def _rate_source(args: argparse.Namespace) -> str | None:
    """Where a run without --fps takes its rate from, when not the default (`take_clip_defaults`, --settings-from):
    the file --settings-from names (it fills the flags before --extend's clip), else the clip --extend names; None
    where --fps was typed or neither is given. Needs `args.argv`, which `cli.main` sets before `refuse_seconds`."""
    files = [(getattr(args, "settings_from", None), "the file"), (getattr(args, "extend", None), "the clip")]
    named = [f"{kind} {Path(path).name}" for path, kind in files if path is not None]
    if not named or vars(args).get("argv") is None or "fps" in run_inputs(args).typed:
        return None
    return named[0]
