"""The quality of the server's videos: `motif-lite serve --crf N` (the default of its jobs) and the create field
`crf` (a job's own), checked before anything binds or is queued, handed to the encoder (the ffmpeg command each job
runs, recorded), kept with the job across a restart and a resumed run, and absent from an older data folder's jobs,
which keep the codec's default. Tiny jobs (48x32, 5 frames, 1 step) on the tiny checkpoint, in the test process."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import InProcessServer, multipart  # noqa: E402
from test_video_crf import BEFORE_CRF  # noqa: E402

from motif_lite import cli, load_pipeline  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.io import ffmpeg_writer  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.server.job_record import COMPLETED, QUEUED, new_job_id  # noqa: E402
from motif_lite.server.jobs import SCHEMA_VERSION, JobStore  # noqa: E402
from motif_lite.server.schema import job_request_fields, video_object  # noqa: E402

PROMPT = "a red fox runs through snow"
JOB = dict(prompt=PROMPT, size="48x32", num_frames=5, steps=1, seed=5)
SETTINGS = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, steps=4, seed=5))
OLD_FOLDER = Path(__file__).parent / "data" / "old_formats" / "50ae301" / "serve-data"  # a version 3 database


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture
def encodes(monkeypatch) -> list[list[str]]:
    """The ffmpeg command of every video written from now on (each ends with the file it writes)."""
    commands = []
    pipe_to_ffmpeg = ffmpeg_writer._pipe_to_ffmpeg

    def recording(stream, shape, command):
        commands.append(command)
        return pipe_to_ffmpeg(stream, shape, command)

    monkeypatch.setattr(ffmpeg_writer, "_pipe_to_ffmpeg", recording)
    return commands


def encoding_of(commands: list[list[str]], job_id: str) -> list[str]:
    """The encoder and its options (after -c:v) of the one command that wrote the video of `job_id`."""
    (command,) = [command for command in commands if job_id in command[-1]]
    return command[command.index("-c:v") + 1 : -1]


def with_crf(crf: int) -> list[str]:
    expected = list(BEFORE_CRF[".mp4"])
    expected[expected.index("-crf") + 1] = str(crf)
    return expected


def finished(server: InProcessServer, body: dict) -> dict:
    code, queued, _ = server.request("POST", "/v1/videos", body)
    assert code == 200, queued
    done = server.wait_status(queued["id"], ("completed", "failed"))
    assert done["status"] == "completed", done
    return done


# ------------------------------------------------------------------------------ serve --crf


def test_serve_crf_outside_h264s_range_is_refused_before_anything_binds(tmp_path, capsys, monkeypatch):
    from motif_lite.cli.serve_flag_values import check_server_crf
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    data = tmp_path / "data"
    assert cli.main(["serve", "--data", str(data), "--crf", "55"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == (
        "error: --crf 55: the server writes every video as .mp4, and crf 55 is outside H.264's range for .mp4: 0 to "
        "51, lower is better and larger (default 18)\n"
    )
    with pytest.raises(SystemExit) as parsed:
        cli.main(["serve", "--data", str(data), "--crf", "fine"])
    assert parsed.value.code == 2
    assert "argument --crf: must be a whole number from 0 to 63" in capsys.readouterr().err
    assert not data.exists()  # refused before the data folder was made
    check_server_crf(51)  # H.264's highest: taken
    check_server_crf(None)


def test_serve_checks_its_flags_before_it_imports_the_server_extra(tmp_path, capsys, monkeypatch):
    # A typo in a flag (--crf 55, an empty --api-key) was said only after fastapi and uvicorn were imported: without
    # the server extra, the install hint came first and the typo after installing it.
    from motif_lite.cli import serve

    def no_extra() -> None:
        raise MotifLiteError("motif-lite serve needs the server extra")

    monkeypatch.setattr(serve, "_check_server_extra", no_extra)
    data = str(tmp_path / "data")
    assert cli.main(["serve", "--data", data, "--crf", "55"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("error: --crf 55: the server writes every video as .mp4")
    assert cli.main(["serve", "--data", data, "--api-key", " "]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("error: --api-key is empty")
    assert cli.main(["serve", "--data", data]) == cli.EXIT_USER_ERROR  # good flags: the extra is checked
    assert capsys.readouterr().err == "error: motif-lite serve needs the server extra\n"


def test_serve_gives_its_crf_to_the_servers_config(tmp_path, monkeypatch, capsys):
    from motif_lite.server import runner

    configs = []

    def recorded(store, config):  # the server as `serve` makes it, stopped before anything loads
        configs.append(config)
        store.close()
        raise MotifLiteError("recorded")

    monkeypatch.setattr(runner, "VideoServer", recorded)
    for data, flags in (("a", ["--crf", "28"]), ("b", [])):
        assert cli.main(["serve", "--data", str(tmp_path / data), "--port", "0", *flags]) == cli.EXIT_USER_ERROR
    assert [config.crf for config in configs] == [28, None]


# ------------------------------------------------------------------------------ the create field


@pytest.mark.parametrize(
    ("crf", "message"),
    [
        (52, "crf 52 is outside H.264's range for .mp4: 0 to 51, lower is better and larger (default 18)"),
        (-1, "crf -1 is outside H.264's range for .mp4: 0 to 51"),
        ("28", "crf must be a whole number, e.g. 23, got '28'"),  # JSON has numbers: a string is a mistake
        (28.5, "crf must be a whole number, e.g. 23, got 28.5"),
        (28.0, "crf must be a whole number, e.g. 23, got 28.0 (a float: give 28)"),  # was only "got 28.0"
        (True, "crf must be a whole number, e.g. 23, got true"),  # JSON's word for what was sent
    ],
)
def test_a_crf_out_of_range_or_not_a_whole_number_is_400_before_queueing(pipe, tmp_path, crf, message):
    with InProcessServer(pipe, tmp_path / "data") as server:
        code, error, _ = server.request("POST", "/v1/videos", {**JOB, "crf": crf})
        assert code == 400 and error["error"]["param"] == "crf" and error["error"]["code"] == "invalid_value"
        assert error["error"]["message"].startswith(message), error
        assert server.store.counts() == {}


def test_a_form_crf_is_parsed_and_a_quality_field_points_at_crf(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data") as server:
        body, headers = multipart({"prompt": PROMPT, "crf": "forty"}, {})
        code, error, _ = server.request("POST", "/v1/videos", body, headers)
        assert code == 400 and error["error"]["param"] == "crf"
        assert error["error"]["message"] == "crf must be a whole number, e.g. 23, got 'forty'"
        for other_name in ("quality", "video_quality"):
            code, error, _ = server.request("POST", "/v1/videos", {**JOB, other_name: 8})
            assert code == 400 and f"unknown parameter '{other_name}'; did you mean 'crf'?" in error["error"]["message"]
        body, headers = multipart({**JOB, "num_frames": "5", "steps": "1000", "seed": "5", "crf": " 30 "}, {})
        code, queued, _ = server.request("POST", "/v1/videos", body, headers)
        assert code == 200 and queued["settings"]["crf"] == 30, queued
        assert server.request("DELETE", f"/v1/videos/{queued['id']}")[0] == 200


def test_the_jobs_crf_wins_over_the_servers_and_reaches_the_encoder(pipe, tmp_path, encodes):
    with InProcessServer(pipe, tmp_path / "data", crf=28) as server:
        own = finished(server, {**JOB, "crf": 0})  # 0 (lossless) is a crf like any other, not "none given"
        servers = finished(server, {**JOB, "crf": None})  # null: not given
    assert (own["settings"]["crf"], servers["settings"]["crf"]) == (0, 28)
    assert encoding_of(encodes, own["id"]) == with_crf(0)
    assert encoding_of(encodes, servers["id"]) == with_crf(28)
    assert f"{own['id']}: started (48x32, 5 frames, 1 step, crf 0)" in server.log


def test_without_any_crf_the_video_is_encoded_as_before_and_a_higher_one_is_smaller(pipe, tmp_path, encodes):
    with InProcessServer(pipe, tmp_path / "data") as server:
        default = finished(server, JOB)
        small = finished(server, {**JOB, "crf": 51})
        sizes = [server.store.video_path(job["id"]).stat().st_size for job in (default, small)]
    assert default["settings"]["crf"] == 18  # the codec's default, shown as the number it is
    assert encoding_of(encodes, default["id"]) == BEFORE_CRF[".mp4"]
    assert f"{default['id']}: started (48x32, 5 frames, 1 step)" in server.log  # no crf said when none was given
    assert sizes[1] < sizes[0], sizes


# ------------------------------------------------------------------------------ kept with the job


def test_a_job_keeps_its_crf_across_a_restart_and_goes_on_to_encode_with_it(pipe, tmp_path, encodes):
    from test_server import run_stopping_at

    from motif_lite.server.worker import Worker, percent

    store = JobStore(tmp_path)
    lines = []
    worker = Worker(store, pipe, lines.append)
    try:
        job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10, crf=33)
        run_stopping_at(worker, job.id, percent("denoise", 1, 4))  # stopped by a shutdown after step 2
        assert store.get(job.id).status == QUEUED and encodes == []
        store.close()
        store = worker.store = JobStore(tmp_path)  # the server starts again
        store.recover()
        assert store.get(job.id).crf == 33 and video_object(store.get(job.id), None)["settings"]["crf"] == 33
        run_stopping_at(worker, job.id, None)
        assert f"{job.id}: goes on from step 2 of 4" in lines and store.get(job.id).status == COMPLETED
        assert encoding_of(encodes, job.id) == with_crf(33)
    finally:
        store.close()


def test_a_crf_edited_by_hand_into_no_whole_number_is_refused_at_start(tmp_path):
    store = JobStore(tmp_path)
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10, crf=20)
    store.close()
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    database.execute("UPDATE jobs SET crf = 'high' WHERE id = ?", (job.id,))
    database.commit()
    database.close()
    with pytest.raises(MotifLiteError, match=f"{job.id}: crf is not a whole number"):
        JobStore(tmp_path)


def test_an_older_data_folder_gains_the_crf_and_its_jobs_keep_the_codecs_default(pipe, tmp_path, encodes):
    data = tmp_path / "data"
    shutil.copytree(OLD_FOLDER, data)
    (finished_before,) = (path.stem for path in (data / "videos").glob("*.mp4"))
    queued_before = new_job_id()  # queued by that version, without a crf of its own
    database = sqlite3.connect(data / "jobs.sqlite3")
    assert "crf" not in {row[1] for row in database.execute("PRAGMA table_info(jobs)")}
    database.execute("INSERT INTO jobs (id, status, created_at, model, settings) VALUES (?, ?, 0, 'tiny', ?)",
                     (queued_before, QUEUED, json.dumps({**SETTINGS, "steps": 1})))  # fmt: skip
    database.commit()
    database.close()
    with InProcessServer(pipe, data, crf=28) as server:  # the server's --crf is for the jobs queued from now on
        done = server.wait_status(queued_before, ("completed", "failed"))
        code, old, _ = server.request("GET", f"/v1/videos/{finished_before}")
    assert done["status"] == "completed" and done["settings"]["crf"] == 18, done
    assert code == 200 and old["settings"]["crf"] == 18
    assert encoding_of(encodes, queued_before) == BEFORE_CRF[".mp4"]
    database = sqlite3.connect(data / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "crf" in {row[1] for row in database.execute("PRAGMA table_info(jobs)")}
    database.close()
