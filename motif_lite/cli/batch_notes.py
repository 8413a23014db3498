"""The lines of `motif-lite run` on the videos of a batch (-b N): their files and seeds, listed by their ends when
there are many; the pace and the last line of a batch that runs; and after a failure, the notes on the videos it
finished, those it lost and those it left unstarted, with the command that makes each."""

from __future__ import annotations

import datetime

from motif_lite.request import GenerationRequest
from motif_lite.shell_syntax import quoted


def batch_videos_note(requests: list[GenerationRequest], drawn: bool) -> list[str]:
    """A dry run's note on the videos of a batch: each one's file, and its seed unless the seeds are `drawn` (the run
    draws its own), which a run names as it starts (a file's seed with --settings-from, say)."""
    if len(requests) == 1:
        return []
    label = batch_label("video", requests)
    if drawn:
        return [f"{label}: {listed([str(r.output) for r in requests])} (the run draws their seeds)"]
    return [f"{label}: " + listed([f"{r.output} (seed {r.seed})" for r in requests])]


# The most files or seeds of a batch a line lists whole: `-b 10000` made a dry run's note of its files 169 kB long
# (and a run's line of seeds 110 kB), burying the notes after it. The rest follow from the first (-1, -2, ...; SEED,
# SEED+1, ...).
LISTED_AT_MOST = 8


def listed(items: list[str]) -> str:
    """`items` joined with commas; beyond `LISTED_AT_MOST` of them, the first three, "...", and the last."""
    shown = items if len(items) <= LISTED_AT_MOST else [*items[:3], "...", items[-1]]
    return ", ".join(shown)


def batch_label(noun: str, requests: list[GenerationRequest]) -> str:
    """The label of a batch's list of `noun`s: "seed" for one, "videos", or with their count where `listed`
    leaves some out: "videos (10000)"."""
    label = noun if len(requests) == 1 else f"{noun}s"
    return label + _count_if_cut(requests)


def _count_if_cut(items: list) -> str:
    """ " (N)" where `listed` leaves some of the N `items` out, else nothing."""
    return f" ({len(items)})" if len(items) > LISTED_AT_MOST else ""


def batch_pace(done: int, videos: int, seconds: float) -> str:
    """What a batch's "video N of M" line adds once `done` of the `videos` this run makes took `seconds`: that time,
    and the time the rest would take at that pace (each video of a batch has the same size and steps), so that a
    night's batch says when it will end."""
    if done == 0:
        return ""
    left = datetime.timedelta(seconds=round(seconds / done * (videos - done)))
    return f" ({done} done in {datetime.timedelta(seconds=round(seconds))}, about {left} left at that pace)"


def batch_done(requests: list[GenerationRequest], seconds: float, made_before: int = 0) -> str:
    """The last line of a batch that made every video: after hours of summaries, how many, how long in all and
    which files, in one line. `made_before`: how many of them an earlier run had made (skipped by this one)."""
    took = datetime.timedelta(seconds=round(seconds))
    files = listed([str(r.output) for r in requests])
    before = f"; {made_before} of them made before, by an earlier run" if made_before else ""
    return f"batch done: {len(requests)} videos in {took} (h:mm:ss, the load included{before}): {files}"


def finished_videos(requests: list[GenerationRequest], seed_drawn: bool = False) -> list[str]:
    """The note on the videos of a batch finished before a failure: written, so not to make again (the same command
    with its seed (-s), run again with -o, skips them: `Run.made_before`). `seed_drawn`: the batch named with -o drew
    its seeds (no -s), so the note gives the -s that goes on where it stopped: the same command again draws new seeds
    and makes every video again."""
    if not requests:
        return []
    videos = listed([f"{r.output} (seed {r.seed})" for r in requests])
    # requests[0] is the batch's first video: its seed is the batch's -s.
    go_on = f"; to go on where the batch stopped, run the same command with -s {requests[0].seed}" if seed_drawn else ""
    return [f"finished{_count_if_cut(requests)}: {videos}{go_on}"]


def unsaved_videos(requests: list[GenerationRequest]) -> list[str]:
    """The note on the videos of a batch that a failure stopped before anything of them was saved (before the first
    step): which, and the command for each."""
    return [
        f"started, nothing saved: {r.output} (seed {r.seed}); run it again as an ordinary run of the same command "
        f"with -b 1 -s {r.seed} -o {quoted(str(r.output))}"
        for r in requests
    ]


def unstarted_videos(requests: list[GenerationRequest]) -> list[str]:
    """The note on the videos of a batch that a failure left unstarted: which (the ends of a long list, as
    `finished_videos` lists them: `-b 10000` stopped early wrote a 258 kB line), and the command for each."""
    if not requests:
        return []
    videos = listed([f"{r.output} (seed {r.seed})" for r in requests])
    return [
        f"not started{_count_if_cut(requests)}: {videos}; each is an ordinary run of the same command with -b 1, "
        "-s SEED and -o FILE"
    ]
