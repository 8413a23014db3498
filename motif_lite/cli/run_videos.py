"""The run itself (`Run`), once its videos are resolved: checked, planned and loaded, then each video made with its
summary (those an earlier run of the command made skipped), and after a failure what of the batch was kept and how
to go on."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite import launcher_variables
from motif_lite.cli.batch_notes import (
    LISTED_AT_MOST,
    batch_done,
    batch_label,
    batch_pace,
    finished_videos,
    listed,
    unsaved_videos,
    unstarted_videos,
)
from motif_lite.cli.before_download import not_said_again
from motif_lite.cli.common import print_notes
from motif_lite.cli.prepare import figures_on_out_of_memory, load_from_flags, text_encoder_words
from motif_lite.cli.resume import earlier_runs, goes_on_with_resume, kept_anywhere, kept_state
from motif_lite.cli.run_inputs import run_inputs
from motif_lite.cli.run_prepare import prepare
from motif_lite.cli.run_request import seed_was_drawn
from motif_lite.cli.run_summary import gpu_memory_of, summary
from motif_lite.io.staging import described_output
from motif_lite.progress import ProgressBars
from motif_lite.request import GenerationRequest
from motif_lite.request.terms import extended_frames
from motif_lite.shell_syntax import on_windows, quoted

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.io.clip import Clip
    from motif_lite.io.latents import SavedLatents
    from motif_lite.pipeline import GenerationResult, MotifVideoPipeline
    from motif_lite.runtime.parallel import Parallel
    from motif_lite.runtime.planner import Plan


@dataclass
class Run:
    """What every video of a run is made with besides its request: the flags, this process's part of a parallel run
    (None on one process), how it prints (`_quiet` on ranks other than 0), the latents file it resumes, the clip it
    extends and the --preview writer."""

    args: argparse.Namespace
    parallel: Parallel | None = None
    say: Callable = print
    resume: SavedLatents | None = None
    clip: Clip | None = None
    on_preview: Callable | None = None

    def generate(
        self, requests: list[GenerationRequest], device: str | torch.device, loras: list[tuple[Path, float]]
    ) -> int:
        """Check, plan and load on `device` (with --lora's `loras`), then make the `requests`' videos."""
        from motif_lite.io.latents_saving import fallback_folder

        args, parallel, say = self.args, self.parallel, self.say
        if self.resume is None:
            print_notes(earlier_runs(requests), say)
        prepared = prepare(args, requests, device, loras, parallel, say=say)
        say(f"{batch_label('seed', requests)}: {listed([str(r.seed) for r in requests])}", file=sys.stderr)
        sources, plan = prepared.sources, prepared.plan
        # Out of memory all the same: said with the figures of the plan and of the next one down (its note).
        with not_said_again(prepared.long_prompts), figures_on_out_of_memory(prepared.planned, plan):
            start = time.perf_counter()
            # The --lora files as `prepare` read and checked them: not read again as the model loads.
            pipe = load_from_flags(args, sources, prepared.device, plan, prepared.lora_files, prepared.batch_guidance,
                                   parallel, prompt_tokenizer=prepared.tokenizer)  # fmt: skip
            pipe.latents_fallback = fallback_folder()  # a full output disk must not lose hours of sampling
            pipe.warns_long_cpu_runs = False  # its time was asked about (or said with --yes) before it loaded
            load_seconds = time.perf_counter() - start
            self.make_videos(pipe, requests, sources, prepared.dtype, plan, load_seconds)
        return 0

    def make_videos(
        self,
        pipe: MotifVideoPipeline,
        requests: list[GenerationRequest],
        sources: ModelSources,
        dtype: torch.dtype,
        plan: Plan | None,
        load_seconds: float,
    ) -> None:
        """The run's videos one after another with the loaded `pipe`, each with its summary (the first's with the
        `load_seconds`)."""
        text_encoder = text_encoder_words(sources)
        ran_on = _ran_on(pipe, dtype, sources)
        gpu_memory = gpu_memory_of(pipe.device)  # to warn when a video's peak spilled past it (Windows' driver)
        made_before, other_versions = self.made_before(pipe, requests)
        clip_frames = None if self.clip is None else self.clip.frames
        for video in made_before:
            self.say(f"skipped {video.output}: already made with these settings", file=sys.stderr)
            # A script takes the batch's files from the `output:` lines: those of the skipped videos too.
            self.say(f"output: {described_output(video.output, extended_frames(video.frames, clip_frames))}")
        if made_before and self.args.crf is not None:  # "these settings" cannot include what no file stores
            self.say(_crf_note(made_before, self.args.crf), file=sys.stderr)
        for note in other_versions:
            self.say(f"note: {note}", file=sys.stderr)
        to_make = [video for video in requests if video not in made_before]
        start = time.perf_counter()
        for made, video in enumerate(to_make):
            number = requests.index(video) + 1
            if len(requests) > 1:
                pace = batch_pace(made, len(to_make), time.perf_counter() - start)
                self.say(f"video {number} of {len(requests)}: seed {video.seed}, {video.output}{pace}", file=sys.stderr)
            unstarted = [r for r in requests[number:] if r not in made_before]
            result = self.sample(
                pipe, video, in_batch=len(requests) > 1, finished=requests[: number - 1], unstarted=unstarted
            )
            first = made == 0
            given = run_inputs(self.args).given()  # the flags typed and the files under them: the table's sources
            self.say(summary(
                result, load_seconds if first else 0.0, plan, pipe.loras, text_encoder, first, ran_on, given, gpu_memory
            ))  # fmt: skip
        if len(requests) > 1:
            took = load_seconds + time.perf_counter() - start
            self.say(batch_done(requests, took, len(made_before)), file=sys.stderr)

    def made_before(
        self, pipe: MotifVideoPipeline, requests: list[GenerationRequest]
    ) -> tuple[list[GenerationRequest], list[str]]:
        """The videos of a batch named with -o whose files are there with the settings this run would store in them
        (an earlier run of the same command, stopped before its end, made them): not made again; and the notes on
        those whose files hold these settings but another motif-lite version's, made again (the stored version is
        compared too), said so that a rerun after an upgrade does not replace finished videos without a word. Each
        file read once, on the main rank of a parallel run, so that every rank skips the same ones. Nothing for a
        single video, which -o replaces."""
        from motif_lite.pipeline.metadata import settings_as_asked
        from motif_lite.ran_on import without_ran_on

        if len(requests) == 1 or self.args.output is None:  # without -o a batch never writes over earlier files
            return [], []

        clip_frames = None if self.clip is None else self.clip.frames

        def judged() -> tuple[list[int], list[str]]:
            made, notes = [], []
            for i, video in enumerate(requests):
                if (stored := _stored_settings_of(video.output)) is None:
                    continue
                # The attention asked for, not the exact attention an 8-bit one fell back to (the file says both);
                # the machine that made it is a record, not a setting.
                stored = settings_as_asked(without_ran_on(stored))
                wanted = settings_as_asked(pipe.stored_settings_for(video))
                version = stored.get("version")
                # A PNG sequence whose frames were being moved into place when its run was killed is made again.
                if stored == wanted and _every_frame_there(
                    video.output, extended_frames(stored["frames"], clip_frames)
                ):
                    made.append(i)
                elif version != wanted["version"] and {**stored, "version": wanted["version"]} == wanted:
                    notes.append(
                        f"{video.output} was made with these settings by motif-lite {version}: this run, of "
                        f"{wanted['version']}, makes it again (a stored version that differs is made again)"
                    )
            return made, notes

        made, notes = judged() if self.parallel is None else self.parallel.share(judged)
        return [requests[i] for i in made], notes

    def sample(
        self,
        pipe: MotifVideoPipeline,
        video: GenerationRequest,
        in_batch: bool,
        finished: list[GenerationRequest],
        unstarted: list[GenerationRequest],
    ) -> GenerationResult:
        """One video of the run (`in_batch`: one of several), with progress bars on the main rank; when it fails,
        the notes on the videos of the batch: those `finished` before it (written: not to make again), this one
        when nothing of it was saved, and those it leaves `unstarted`."""
        from motif_lite.io.latents import latents_path
        from motif_lite.io.output_claims import unused_path

        resume = self.resume
        progress = ProgressBars() if self.parallel is None or self.parallel.is_main else None
        # Named here (the pipeline would name it on its first save): a failure can tell whether anything was kept.
        keeps = unused_path(latents_path(video.output)) if resume is None else resume.file
        # A resumed run's image was hashed as `resume_args` found it the one the run sampled from (else refused):
        # its checksum is the one the file keeps, not hashed again.
        checked = None if resume is None else resume.run.get("image_sha256")
        try:
            # The output is -o, checked in run's words, or the stopped run's own (or a free name beside it).
            resolved = (
                None
                if resume is None
                else video.resolve_with_inputs(self.clip, checksum=checked, taken_output=video.output)
            )
            # No writer, no interval: a resumed run past the last preview step makes none (`generate` refuses one).
            every = self.args.preview_every if self.on_preview is not None else None
            result = pipe.generate(
                video if resolved is None else resolved.request, progress, self.on_preview, every,
                resume=resume, latents_file=keeps, clip=self.clip, crf=self.args.crf, resolved=resolved,
            )  # fmt: skip
        except BaseException:
            kept = kept_anywhere(keeps, video.output)  # keeps is a path always: a free name or the resumed file
            lost = [video] if in_batch and not kept else []
            if progress is not None:  # its bar ends its line first: a note printed after it was glued to the bar
                progress.close()
            again = []  # how a parallel run goes on: the --resume command printed would go on in one process
            if kept and self.parallel is not None:
                again = _parallel_kept_notes(self.args, self.parallel, kept_state(keeps, video.output), resume)
            drawn = self.args.output is not None and seed_was_drawn(self.args)  # a rerun skips them only with -s
            notes = [*finished_videos(finished, drawn), *unsaved_videos(lost), *unstarted_videos(unstarted), *again]
            print_notes(notes, self.say)
            raise
        finally:
            if progress is not None:
                progress.close()
        if self.parallel is None:
            return result
        # After every rank's last collective of the video, so that all of them reach this one.
        everyones = self.parallel.every_ranks_fallbacks(result.kernel_fallbacks)
        return dataclasses.replace(result, kernel_fallbacks=everyones)


def _parallel_kept_notes(
    args: argparse.Namespace, parallel: Parallel, kept: SavedLatents | None, resumed: SavedLatents | None
) -> list[str]:
    """The note after the kept state's --resume command in a parallel run (`resumed`: the file it went on from):
    how to go on with as many processes; for a state saved after the last step (its decode failed and the save of
    the denoised latents too), that `motif-lite decode` makes the video in one. Nothing after a failed decode's
    `motif-lite decode` advice for denoised latents, nor for a resumed file left as it was."""
    from motif_lite.shell_syntax import quoted

    if not goes_on_with_resume(kept, resumed):
        return []
    if kept.sampling_done:  # the decode alone is left, which one process runs: --resume's processes sample nothing
        return [f"this run had {parallel.layout.world} processes, but {kept.file} holds all its sampling: "
                f"motif-lite decode {quoted(str(kept.file))} makes the video in one process"]  # fmt: skip
    return [_resume_on_as_many(args, parallel)]


def _resume_on_as_many(args: argparse.Namespace, parallel: Parallel) -> str:
    """The note after the kept state's --resume command in a parallel run: that command, as printed, would go on in
    one process, since the saved file does not record the processes."""
    world = parallel.layout.world
    # torchrun sets LOCAL_WORLD_SIZE: fewer than the world means several machines (read before anything loads).
    here = launcher_variables.launcher_number_or_none("LOCAL_WORLD_SIZE", smallest=1) or world
    if args.gpus is not None:  # --gpus N started the ranks (each is given the flags typed)
        how = f"add --gpus {world} to it"
    elif here >= world:
        how = f"start it under torchrun with {world} processes again (torchrun --nproc-per-node {world} -m motif_lite)"
    elif world % here == 0:  # a world in processes per machine would be too many for one machine, or fail
        machines = world // here
        how = (
            f"start it as this run was started, under torchrun on {machines} machines of {here} processes each "
            f"(torchrun --nnodes {machines} --nproc-per-node {here}, this run's --rdzv flags, -m motif_lite)"
        )
    else:  # machines with different counts: only the way it was started says which has how many
        how = f"start it as this run was started ({world} processes in all, {here} on this machine)"
    return f"this run had {world} processes: to go on with as many, {how}; as printed, --resume goes on in one"


def _crf_note(skipped: list[GenerationRequest], crf: int) -> str:
    """The note on the videos a batch run again with --crf skips: no file stores its --crf, so one encoded at
    another was skipped as made with "these settings", and its `output:` line given. It names them (by their ends
    where there are many, as `listed`) and gives the command that deletes them where it is short enough to paste."""
    one = len(skipped) == 1
    paths = [quoted(video.output) for video in skipped]
    files = f"{paths[0]} keeps" if one else f"the {len(skipped)} files skipped ({listed(paths)}) keep"
    if len(paths) <= LISTED_AT_MOST:
        # PowerShell's Remove-Item takes one list of files, a comma between them: `del A B` was refused there ("A
        # positional parameter cannot be found"). -LiteralPath: its plain -Path reads `[` and `]` as a wildcard, and
        # `del "fox[1].mp4"` deleted no file of that name.
        how = f": Remove-Item -LiteralPath {', '.join(paths)}" if on_windows() else f": rm {' '.join(paths)}"
    else:  # the command for every file of a long batch would bury the notes after it
        how = " (their output: lines above name each)"
    return (
        f"note: a video does not store its --crf: {files} the quality an earlier run encoded; delete "
        f"{'it' if one else 'them'} first to encode at --crf {crf}{how}"
    )


def _ran_on(pipe: MotifVideoPipeline, dtype: torch.dtype, sources: ModelSources) -> str:
    """Where and in what precision the run ran, for its summary: nothing else there says it (a CPU run prints no
    memory plan)."""
    ran_on = f"{pipe.device}, {str(dtype).removeprefix('torch.')}"
    if sources.quantize is not None:
        return ran_on + f", transformer quantized to {sources.quantize} as it loaded"
    return ran_on + (f", transformer {sources.gguf.name}" if sources.gguf is not None else "")


def _every_frame_there(output: Path | str, frames: int) -> bool:
    """Whether the video at `output` holds all its `frames`: of a PNG sequence, each frame file is there (its run,
    killed as it moved them into place, may have left the first alone, which holds the settings all the same);
    another format is written whole or not at all."""
    from motif_lite.io.staging import frame_file, is_frame_sequence

    path = Path(output)
    return not is_frame_sequence(path) or all(frame_file(path, i).is_file() for i in range(frames))


def _stored_settings_of(output: Path | str) -> dict | None:
    """The settings the video at `output` stores (of a PNG sequence, its first frame's); None where there is none,
    or a file without motif-lite's settings."""
    from motif_lite.io.settings_file import SettingsFileError, read_settings
    from motif_lite.io.staging import frame_file, is_frame_sequence

    path = Path(output)
    try:
        return read_settings(frame_file(path, 0) if is_frame_sequence(path) else path).values
    except SettingsFileError:
        return None
