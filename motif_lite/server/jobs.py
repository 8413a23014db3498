"""The job store: every video job with its settings in SQLite (WAL), its files in one data folder (a job's record,
its statuses and its id are `job_record`'s).

    DATA/jobs.sqlite3        one row per job: status, progress, times, the resolved settings and notes (JSON), error
    DATA/videos/ID.mp4       finished videos (written under a `.partial-*` name, renamed when complete)
    DATA/videos/ID.webp      their first frame (the `thumbnail` variant)
    DATA/videos/ID.preview.webp  a running job's latest preview (the `preview` variant), removed when it ends
    DATA/inputs/ID.png       the first-frame image of an image-to-video job as uploaded, kept until the job ends
    DATA/inputs/ID.mp4       an extension's own link to (or copy of) the video it goes on from, or the video
                             uploaded for it to go on from; kept until it ends
    DATA/states/ID.latents.safetensors  a job's sampling state: saved every 10 minutes of sampling, after the
                             last step of a sampling of a minute or more (before the decode), and when the
                             job stops (it goes on from there when it runs again) or fails (kept until it is
                             deleted or the server restarts)
    DATA/states/ID.retried   the job went back to the queue after a crash once: another crash fails it

Job ids are drawn at random (`video_` + 32 hex digits) and every file name is derived from one; nothing a client
sends becomes a path. `recover()` runs once at start: a job that was running when the process died goes back to the
queue once, from the sampling state it saved last (every 10 minutes of sampling; after its last step, a job killed in
its decode goes straight to the decode), and is failed with code `interrupted` when it has none or was already
retried (a crash that repeats must not loop), and is completed when its video was already whole (the process died
before it was recorded); queued jobs stay queued (with their sampling state, if an orderly stop kept one); the
store's files that belong to no finished job are removed (nothing else in the folder is touched). One connection,
guarded by a lock, serves the API threads and the worker: every statement is short, and WAL keeps a reader from
waiting for the worker's progress writes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from motif_lite.choices import LATENTS_SUFFIX
from motif_lite.errors import MotifLiteError, counted, listed
from motif_lite.paths import user_path
from motif_lite.server.job_record import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    INTERRUPTED,
    JOB_FILE,
    JOB_ID,
    QUEUED,
    DamagedJob,
    Job,
)
from motif_lite.shell_syntax import quoted
from motif_lite.version import VERSION

try:
    import fcntl
except ImportError:  # Windows: the lock is msvcrt's
    fcntl = None

# 2: the notes column; 3: the loras column, and times as fractional seconds; 4: the extend and clip_frames columns;
# 5: the crf column; 6: the remixed_from column; 7: the extend_file column; 8: the prompt_warnings column
SCHEMA_VERSION = 8
VIDEO_SUFFIX = ".mp4"  # every job's video: H.264 in MP4, whatever its crf

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order: the queue order and the list order
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,            -- unix seconds; since version 3 with their fraction (stored as REAL)
    started_at INTEGER,
    completed_at INTEGER,
    model TEXT NOT NULL,
    settings TEXT NOT NULL,                 -- JSON: GenerationRequest fields, resolved (seed drawn, frames 4k+1)
    effective TEXT NOT NULL DEFAULT '{}',   -- JSON: what the checkpoint decides for the fields left open (display)
    has_image INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '[]',       -- JSON: what the request's checks found worth knowing (API words)
    loras TEXT NOT NULL DEFAULT '[]',       -- JSON: [file name in --lora-dir, strength] pairs the job asked for
    extend TEXT,                            -- the id of the job whose video this one goes on from (NULL: none)
    clip_frames INTEGER,                    -- that video's frames, which this one's file holds first
    crf INTEGER,                            -- the video encoder's constant-rate factor (NULL: the codec's default)
    remixed_from TEXT,                      -- the id of the job whose settings this one remixes (NULL: none)
    extend_file TEXT,                       -- JSON {name, sha256}: the uploaded video it goes on from (NULL: none)
    prompt_warnings TEXT NOT NULL DEFAULT '[]', -- JSON: the text encoder's warnings on its cut prompts (its notes say)
    error_code TEXT,
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
-- A deleted job's place in the list: a page `after` it (a client deleting what it lists) goes on from there. One
-- short row per deleted job; a version that predates it ignores the table (its pages after a deleted job are 400s).
CREATE TABLE IF NOT EXISTS deleted_jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
# The columns added since the first version, in order, as `_SCHEMA` defines them. The jobs before each get its
# default: no notes or LoRAs, no video extended, the codec's crf (as they were queued with), no remix, no prompt
# warnings known (the encode logs them as it cuts, after the notes that said them: twice, as before).
_ADDED_COLUMNS = {
    "notes": "TEXT NOT NULL DEFAULT '[]'",
    "loras": "TEXT NOT NULL DEFAULT '[]'",
    "extend": "TEXT",
    "clip_frames": "INTEGER",
    "crf": "INTEGER",
    "remixed_from": "TEXT",
    "extend_file": "TEXT",
    "prompt_warnings": "TEXT NOT NULL DEFAULT '[]'",
}


@dataclass(frozen=True)
class Recovered:
    """What `recover` did with the jobs that were running when the last process died."""

    failed: list[str]  # failed as `interrupted`: no saved state, or a second crash
    requeued: list[str]  # back in the queue, to go on from their last saved state
    # completed: their video was whole (renamed into place) before the process died, which left them unrecorded
    completed: list[str] = field(default_factory=list)
    # queued jobs failed at once, each with why (`JobStore._refuse_loras_named_twice`)
    refused: list[tuple[str, str]] = field(default_factory=list)


class DataFolderBusy(MotifLiteError):
    """Another process serves from the same data folder."""


class JobStore:
    """Jobs in `root/jobs.sqlite3`, their files under `root`; safe to call from any thread. One process at a time
    owns a data folder (a second one would take the first one's running job for a crashed one)."""

    def __init__(self, root: str | Path) -> None:
        self.root = user_path(root)
        self.videos = self.root / "videos"
        self.inputs = self.root / "inputs"
        self.states = self.root / "states"
        for folder in (self.root, self.videos, self.inputs, self.states):
            folder.mkdir(parents=True, exist_ok=True)
        # Held, and so locked, until close(). Opened without truncating: it holds the owner's process id, which a
        # second server reads to say which process to stop.
        self._owner = open(self.root / "lock", "a+")  # noqa: SIM115
        self._owner.seek(0)  # msvcrt locks from here: the same first byte in every process
        if not _lock_exclusively(self._owner):
            owner = _owner_process(self._owner)
            self._owner.close()
            raise DataFolderBusy(
                f"another motif-lite serve{f' (process {owner})' if owner else ''} is using the data folder "
                f"{self.root}: stop it first, or give --data another folder"
            )
        self._owner.truncate(0)
        self._owner.write(f"{os.getpid()}\n")
        self._owner.flush()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        try:
            self._refuse_a_newer_schema()
            self._refuse_a_damaged_file()  # before anything is written to it
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash; WAL commits stay cheap
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            self._refuse_unreadable_jobs()
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (MotifLiteError, sqlite3.Error) as exc:
            self._db.close()
            self._owner.close()
            # SQLite's own word for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB) is this exact class; its
            # subclasses are other troubles (a read-only or full disk), which the caller words.
            if type(exc) is sqlite3.DatabaseError:
                raise MotifLiteError(self._damaged(str(exc))) from None
            raise

    def _refuse_a_damaged_file(self) -> None:
        """Refuse a database SQLite finds damaged before the server starts: it would fail later, in a client's request
        or in the worker's job."""
        found = self._db.execute("PRAGMA quick_check").fetchone()[0]  # milliseconds for thousands of jobs
        if found != "ok":  # its first problem, of a few lines: one line, cut short
            first = " ".join(found.replace("*** in database main ***", "").split())
            raise MotifLiteError(self._damaged(f"SQLite's check found: {first[:100]}"))

    def _refuse_unreadable_jobs(self) -> None:
        """Refuse rows this store did not write (`DamagedJob`): edited by hand, they would fail each request that
        lists them."""
        damaged = []
        for row in self._db.execute("SELECT * FROM jobs ORDER BY seq"):
            try:
                Job.from_row(row)
            except DamagedJob as exc:
                damaged.append(exc)
        if damaged:
            ids = ", ".join(f"'{exc.job_id}'" for exc in damaged)
            # Pasted: a data folder with a space in its path is quoted.
            delete = f'sqlite3 {quoted(self.root / "jobs.sqlite3")} "DELETE FROM jobs WHERE id IN ({ids})"'
            problems = listed([str(exc) for exc in damaged], 3, "; ")
            raise MotifLiteError(
                f"the job database {self.root / 'jobs.sqlite3'} holds {counted(len(damaged), 'job')} this motif-lite "
                f"cannot read ({problems}): it was edited by hand or damaged; delete those jobs ({delete}), or give "
                "--data another folder"
            )

    def _damaged(self, why: str) -> str:
        """What to say of a job database SQLite cannot read. Not "move it away": a new database knows no finished
        job, and the next start removes every video of the folder as the files of no job (`recover`)."""
        return (
            f"the job database {self.root / 'jobs.sqlite3'} is damaged ({why}): give --data another folder (this "
            f"one's videos stay in {self.videos}: copy out those you want), or put back a copy of the database"
        )

    def _refuse_a_newer_schema(self) -> None:
        """A database a newer motif-lite wrote may hold what this version cannot read; opened, its version was
        overwritten with this one's without a word."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise MotifLiteError(
                f"the data folder {self.root} was written by a newer motif-lite (job database version {version}; "
                f"this one, motif-lite {VERSION}, knows up to {SCHEMA_VERSION}): upgrade motif-lite (pip install -U "
                "motif-lite), or give --data another folder"
            )

    def _add_missing_columns(self) -> None:
        """A database an earlier version made gets the columns added since (CREATE TABLE IF NOT EXISTS keeps it)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, definition in _ADDED_COLUMNS.items():
            if column not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._owner.close()

    # Paths: only ever from ids this store drew.
    def video_path(self, job_id: str) -> Path:
        return self.videos / f"{_checked(job_id)}{VIDEO_SUFFIX}"

    def thumbnail_path(self, job_id: str) -> Path:
        return self.videos / f"{_checked(job_id)}.webp"

    def preview_path(self, job_id: str) -> Path:
        return self.videos / f"{_checked(job_id)}.preview.webp"

    def input_path(self, job_id: str) -> Path:
        return self.inputs / f"{_checked(job_id)}.png"

    def clip_path(self, job_id: str) -> Path:
        """An extension's own hold on the video it goes on from (a hard link, or a copy), or the uploaded video it
        goes on from."""
        return self.inputs / f"{_checked(job_id)}.mp4"

    def keep_clip(self, extended_id: str, job_id: str) -> Path:
        """Give the job `job_id` its own hold on the video of `extended_id`: a hard link (no space taken), else a
        copy. Deleting the extended video then removes its name, not the file the extension reads: an extension
        holds that video's frames anyway. FileNotFoundError when the video is gone (deleted meanwhile)."""
        source, target = self.video_path(extended_id), self.clip_path(job_id)
        try:
            os.link(source, target)
        except FileNotFoundError:
            raise
        except OSError:  # a file system without hard links, or videos/ on another one
            shutil.copyfile(source, target)
        return target

    def state_path(self, job_id: str) -> Path:
        return self.states / f"{_checked(job_id)}{LATENTS_SUFFIX}"

    def retried_path(self, job_id: str) -> Path:
        return self.states / f"{_checked(job_id)}.retried"

    def add(
        self,
        job_id: str,
        model: str,
        settings: dict[str, Any],
        has_image: bool,
        max_active: int,
        *,
        effective: dict[str, Any] | None = None,
        notes: list[str] | None = None,
        loras: list[tuple[str, float]] | None = None,
        extend: Job | None = None,
        crf: int | None = None,
        remixed_from: str | None = None,
        extend_file: dict[str, str] | None = None,
        clip_frames: int | None = None,
        prompt_warnings: list[str] | None = None,
    ) -> Job | None:
        """Queue a new job (going on from the video of `extend`, a completed job, or from the uploaded video
        `extend_file` ({name, sha256}) of `clip_frames` frames; its video written at `crf`, None: the codec's
        default; `remixed_from`: the id of the job it remixes; `prompt_warnings`: what the text encoder will log as
        it cuts its prompts, which `notes` say); None when `max_active` jobs are already queued or running."""
        if extend is not None:
            clip_frames = extend.frames_in_file
        with self._lock:
            active = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status IN (?, ?)", (QUEUED, IN_PROGRESS))
            if active.fetchone()[0] >= max_active:
                return None
            self._db.execute(
                "INSERT INTO jobs (id, status, created_at, model, settings, effective, has_image, notes, loras, "
                "extend, clip_frames, crf, remixed_from, extend_file, prompt_warnings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_checked(job_id), QUEUED, time.time(), model, json.dumps(settings), json.dumps(effective or {}),
                 int(has_image), json.dumps(notes or []), json.dumps(loras or []),
                 None if extend is None else extend.id, clip_frames, crf, remixed_from,
                 None if extend_file is None else json.dumps(extend_file), json.dumps(prompt_warnings or [])),
            )  # fmt: skip
            return self._get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._get(job_id)

    def _get(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job.from_row(row)

    def page(self, after: str | None, limit: int, descending: bool) -> tuple[list[Job], bool] | None:
        """Up to `limit` jobs after the job `after` (one deleted since counts at its place) in submission order;
        (jobs, has_more), None if `after` is unknown."""
        order, compare = ("DESC", "<") if descending else ("ASC", ">")
        with self._lock:
            bounds: tuple[int, ...] = ()
            if after is not None:
                query = "SELECT seq FROM jobs WHERE id = ? UNION ALL SELECT seq FROM deleted_jobs WHERE id = ?"
                row = self._db.execute(query, (after, after)).fetchone()
                if row is None:
                    return None
                bounds = (row[0],)
            where = f"WHERE seq {compare} ?" if bounds else ""
            query = f"SELECT * FROM jobs {where} ORDER BY seq {order} LIMIT ?"
            rows = self._db.execute(query, (*bounds, limit + 1)).fetchall()
        return [Job.from_row(r) for r in rows[:limit]], len(rows) > limit

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        with self._lock:
            return dict(self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def queued_ids(self) -> set[str]:
        """The ids of the jobs queued now."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM jobs WHERE status = ?", (QUEUED,))}

    def queued_ahead(self, jobs: list[Job]) -> dict[str, int]:
        """Id -> how many queued jobs the worker takes before it, for each queued one of `jobs` (the worker takes
        them by `seq`): one read of the queue's index, at most `--max-queue` rows, none when none of `jobs` waits."""
        waiting = [job.seq for job in jobs if job.status == QUEUED]
        if not waiting:
            return {}
        with self._lock:
            query = "SELECT id FROM jobs WHERE status = ? AND seq <= ? ORDER BY seq"
            queue = [row[0] for row in self._db.execute(query, (QUEUED, max(waiting))).fetchall()]
        return {job_id: place for place, job_id in enumerate(queue)}

    def claim_next(self) -> Job | None:
        """The oldest queued job, now marked in progress (None if the queue is empty). Its progress stays: 0 for a new
        job, the percent it had reached for one queued again with its state (`requeue`, `recover`), which the worker
        sets to where it goes on from once it has read that state."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY seq LIMIT 1", (QUEUED,)).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET status = ?, started_at = ? WHERE id = ?", (IN_PROGRESS, time.time(), row[0])
            )
            return self._get(row[0])

    def set_progress(self, job_id: str, progress: int) -> bool:
        """Record progress; False when the job is no longer running here (deleted meanwhile)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = ?", (progress, job_id, IN_PROGRESS)
            )
            return cursor.rowcount == 1

    def finish(self, job_id: str, error: tuple[str, str] | None = None) -> bool:
        """Mark a running job completed (or failed with (code, message)); False if it was deleted meanwhile."""
        status, code, message = (COMPLETED, None, None) if error is None else (FAILED, *error)
        with self._lock:  # a failed job keeps the progress it had reached
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, progress = CASE WHEN ? THEN 100 ELSE progress END, completed_at = ?, "
                "error_code = ?, error_message = ? WHERE id = ? AND status = ?",
                (status, error is None, time.time(), code, message, job_id, IN_PROGRESS),
            )
            done = cursor.rowcount == 1
        for path in self._inputs(job_id):  # what it was given; what it made (video, sampling state) stays
            path.unlink(missing_ok=True)
        return done

    def add_note(self, job_id: str, note: str) -> None:
        """Add a note that only the run could tell (a kernel that fell back) to a running job's notes."""
        with self._lock:
            query = "SELECT notes FROM jobs WHERE id = ? AND status = ?"
            row = self._db.execute(query, (job_id, IN_PROGRESS)).fetchone()
            if row is not None:  # else deleted meanwhile
                notes = [*json.loads(row[0]), note]
                self._db.execute("UPDATE jobs SET notes = ? WHERE id = ?", (json.dumps(notes), job_id))

    def requeue(self, job_id: str) -> bool:
        """Put a running job back at its place in the queue (the server is stopping in an orderly way), with the
        progress it had reached where it goes on from a saved state, else at 0 (it starts over); False when it is no
        longer running here (deleted meanwhile)."""
        kept = self.state_path(job_id).exists()
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, progress = CASE WHEN ? THEN progress ELSE 0 END, started_at = NULL "
                "WHERE id = ? AND status = ?",
                (QUEUED, kept, job_id, IN_PROGRESS),
            )
            return cursor.rowcount == 1

    def delete(self, job_id: str) -> Job | None:
        """Remove a job and its files; the worker notices a running one at its next progress report."""
        with self._lock:
            job = self._get(job_id)
            if job is not None:
                self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                self._db.execute("INSERT OR REPLACE INTO deleted_jobs (id, seq) VALUES (?, ?)", (job_id, job.seq))
        if job is not None:
            self.remove_files(job_id)
        return job

    def remove_files(self, job_id: str) -> None:
        outputs = (self.video_path(job_id), self.thumbnail_path(job_id), self.preview_path(job_id))
        for path in (*outputs, *self._inputs(job_id), self.state_path(job_id)):
            path.unlink(missing_ok=True)

    def _inputs(self, job_id: str) -> tuple[Path, ...]:
        """The files a job needs only until it ends: its first frame, the video it goes on from, its retry mark."""
        return self.input_path(job_id), self.clip_path(job_id), self.retried_path(job_id)

    def recover(self, lora_dir: Path | None = None) -> Recovered:
        """After a restart: the jobs that were running are completed if their video is whole, else go back to the
        queue once, from their last saved sampling state, else fail; a queued job naming one LoRA file twice (by
        one name, or by two names of one file of `lora_dir`, the server's --lora-dir) fails
        (`_refuse_loras_named_twice`); files of no finished or queued job are removed."""
        now = time.time()
        message = "the server stopped while this video was being generated; submit it again"
        with self._lock:
            running = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE status = ?", (IN_PROGRESS,))]
            # A video is renamed into place only once it is whole: the process died before the job was recorded as
            # completed (while its thumbnail was written), and the video is the one the job would have answered.
            written = [job for job in running if self.video_path(job).is_file()]
            for job in written:
                self._db.execute(
                    "UPDATE jobs SET status = ?, progress = 100, completed_at = ? WHERE id = ?",
                    (COMPLETED, self.video_path(job).stat().st_mtime, job),
                )
            running = [job for job in running if job not in written]
            retried = [job for job in running if self.state_path(job).exists() and not self.retried_path(job).exists()]
            for job in retried:
                self.retried_path(job).touch()
                self._db.execute(  # with the progress it had reached: it goes on from its state
                    "UPDATE jobs SET status = ?, started_at = NULL WHERE id = ?", (QUEUED, job)
                )
            interrupted = [job for job in running if job not in retried]
            self._db.execute(
                "UPDATE jobs SET status = ?, completed_at = ?, error_code = ?, error_message = ? WHERE status = ?",
                (FAILED, now, INTERRUPTED, message, IN_PROGRESS),
            )
            refused = self._refuse_loras_named_twice(
                now, lora_dir
            )  # before the files of the jobs that wait are counted
            finished = {r[0] for r in self._db.execute("SELECT id FROM jobs WHERE status = ?", (COMPLETED,))}
            queued = {r[0] for r in self._db.execute("SELECT id FROM jobs WHERE status = ?", (QUEUED,))}
            needs_input = (
                "SELECT id FROM jobs WHERE status = ? AND (has_image OR extend IS NOT NULL OR extend_file IS NOT NULL)"
            )
            waiting = {r[0] for r in self._db.execute(needs_input, (QUEUED,))}  # the image, or the video extended
        for path in _job_files(self.videos):
            if path.stem not in finished or path.suffix not in (".mp4", ".webp"):
                path.unlink()  # partial writes, previews, files of deleted jobs
        for path in _job_files(self.inputs):
            if path.stem not in waiting:
                path.unlink()
        for path in _job_files(self.states):  # a queued job's state waits with it; a failed job's goes
            if path.name.split(".")[0] not in queued:
                path.unlink()
        return Recovered(interrupted, retried, written, refused)

    def _refuse_loras_named_twice(self, now: float, lora_dir: Path | None) -> list[tuple[str, str]]:
        """Fail each queued job whose `loras` name one file twice (by one name, or by two names of one file of
        `lora_dir`), with why: a motif-lite from before such a job was refused queued it, or a name has become a
        link to another since, and this one refuses it (it would apply the file twice). Failed as the stored queue
        is read, so that its status says why at once; it failed as its turn came, told that the server had changed
        since it was queued. -> (id, why) of each."""
        # schema and loras import this module
        from motif_lite.server.loras import one_file_named_again, why_one_file
        from motif_lite.server.schema import named_once_advice
        from motif_lite.weights.lora_values import times, times_applied

        refused = []
        for job_id, stored in self._db.execute("SELECT id, loras FROM jobs WHERE status = ?", (QUEUED,)).fetchall():
            loras = [(name, strength) for name, strength in json.loads(stored)]
            if (same := one_file_named_again(loras, lora_dir)) is None:
                continue
            names, strengths = [loras[i][0] for i in same], [loras[i][1] for i in same]
            first, applied, advice = names[0], times_applied(strengths), named_once_advice(names[0], *strengths)
            if (second := next((name for name in names if name != first), None)) is None:
                why = (
                    f"its loras name {first!r} {times(len(strengths))}, which would apply {applied}: the motif-lite "
                    f"that queued it took that, this one refuses it; submit it again and {advice}"
                )
            else:
                assert lora_dir is not None  # two names are one file only in a folder
                named = [repr(name) for name in names]
                why = (
                    f"its loras name {', '.join(named[:-1])} and {named[-1]}, one file of this server's LoRA folder "
                    f"({why_one_file(lora_dir, first, second)}), which would apply {applied}: submit it again and "
                    f"{advice}"
                )
            self._db.execute(
                "UPDATE jobs SET status = ?, completed_at = ?, error_code = ?, error_message = ? WHERE id = ?",
                (FAILED, now, "invalid_request", why, job_id),
            )
            refused.append((job_id, why))
        return refused


def _job_files(folder: Path) -> list[Path]:
    """The files in `folder` that this store wrote. Anything else there is the operator's (`--data .` in a folder
    that has a videos/ of its own) and is never removed."""
    return [path for path in folder.iterdir() if JOB_FILE.match(path.name) and path.is_file()]


def _lock_exclusively(file: IO) -> bool:
    """Take the OS's exclusive lock on an open file without waiting; False if another process holds it. The OS
    drops the lock when the file is closed or the process dies, so a crashed server never leaves its folder
    locked."""
    try:
        if fcntl is not None:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)  # its first byte (past the end is allowed)
    except OSError:  # flock: BlockingIOError; msvcrt: PermissionError
        return False
    return True


def _owner_process(file: IO) -> str | None:
    """The process id the server that holds the data folder's lock wrote into it; None where it cannot be read
    (Windows keeps the locked byte from other processes) or holds no number (an older motif-lite wrote none)."""
    try:
        file.seek(0)
        written = file.read(32).strip()
    except OSError:
        return None
    return written if written.isdigit() else None


def _checked(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return job_id
