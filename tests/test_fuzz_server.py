"""Damaged and hand-edited input to `motif-lite serve`: create bodies with a field of the wrong JSON type or value
get a 400 with the API's JSON error naming that field (bodies that are no JSON object at all a 400), never a 500; a
job database cut short, with flipped bytes or with rows edited by hand is refused at start in one line, and left as
it is. Tiny checkpoint, CPU; no job runs."""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from motif_lite import cli  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.server.app import ServerConfig, ServerState, create_app  # noqa: E402
from motif_lite.server.job_record import new_job_id  # noqa: E402
from motif_lite.server.jobs import JobStore  # noqa: E402
from motif_lite.server.worker import Worker  # noqa: E402

BODY = {"prompt": "a red fox", "size": "48x32", "num_frames": 5, "steps": 2, "seed": 7}
FIELDS = ["prompt", "model", "size", "seconds", "input_reference", "negative_prompt", "num_frames", "steps", "seed",
          "guidance_scale", "guidance_method", "apg_eta", "apg_norm_threshold", "apg_momentum", "flow_shift",
          "sampling_method", "fps", "extend", "loras", "crf", "unknown_field"]  # fmt: skip
MISSING = object()
WRONG_VALUES = ["12", [1], None, float("nan"), float("inf"), 10**30, -5, 0, True, {"a": 1}, "x" * 100_000, "\udcff",
                1.5, -1e308, MISSING]  # fmt: skip


@pytest.fixture(scope="module")
def client(checkpoint, tmp_path_factory):
    """The API of a server whose model has loaded and whose worker is not started: a body that passes every check
    is queued (and deleted again by the test), and no job runs. (A full queue is refused before the body is read,
    so it cannot stand for "passed every check".)"""
    import torch

    from motif_lite import load_pipeline

    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    store = JobStore(tmp_path_factory.mktemp("data"))
    state = ServerState(ServerConfig(model_name="tiny"))
    app_client = TestClient(create_app(store, state), raise_server_exceptions=False)
    state.ready(Worker(store, pipe, log=lambda line: None), ServerConfig(model_name="tiny"))
    yield app_client
    store.close()


def posted(client, body: bytes) -> tuple[int, dict]:
    response = client.post("/v1/videos", content=body, headers={"content-type": "application/json"})
    return response.status_code, response.json()


# The values of WRONG_VALUES that each field takes: a body with one passes every check and is queued. Every other
# value must be refused with a 400 that names the field, so that a check left out fails the test instead of
# queueing the job.
ACCEPTED = {
    "prompt": ["12"],
    "model": ["12", None, "x" * 100_000, "\udcff", MISSING],  # the model's name is not checked: one is loaded
    "size": [None, MISSING],
    "seconds": ["12", None, 1.5, MISSING],  # not true: it was read as 1 s (float(True))
    "input_reference": [None, MISSING],
    "negative_prompt": ["12", None, MISSING],
    "num_frames": [None, MISSING],
    "steps": [None, MISSING],
    "seed": [None, 0, MISSING],
    "guidance_scale": [None, 0, 1.5, MISSING],
    "guidance_method": [None, MISSING],
    "apg_eta": [None, 10**30, 0, 1.5, MISSING],
    "apg_norm_threshold": [None, 10**30, 0, 1.5, MISSING],
    "apg_momentum": [None, 10**30, -5, 0, 1.5, -1e308, MISSING],
    "flow_shift": [None, 1.5, MISSING],
    "sampling_method": [None, MISSING],
    "fps": [None, 1.5, "12", MISSING],  # "12": the text `--fps` takes (24000/1001, ntsc-film, 12)
    "extend": [None, MISSING],
    "loras": [None, MISSING],
    "crf": [None, 0, MISSING],
    "unknown_field": [MISSING],
}


@pytest.mark.parametrize("field", FIELDS)
def test_every_wrong_value_gets_a_400_naming_its_field(client, field):
    for value in WRONG_VALUES:
        body = {key: item for key, item in BODY.items() if key != field and not (field == "seconds" and
                key == "num_frames")}  # fmt: skip
        if value is not MISSING:
            body[field] = value
        status, answer = posted(client, json.dumps(body).encode())
        if any(value is taken or value == taken for taken in ACCEPTED[field]):
            assert (status, answer["status"]) == (200, "queued"), (value, answer)
            assert client.delete(f"/v1/videos/{answer['id']}").status_code == 200
        else:
            assert set(answer["error"]) == {"message", "type", "param", "code"}, (value, answer)
            # So many seconds (10**30) are refused as seconds, the field sent, not as the frame count they give.
            assert status == 400 and answer["error"]["param"] == field, (value, answer)


def test_a_prompt_that_is_not_utf8_is_refused_with_its_param(client):
    status, answer = posted(client, json.dumps({**BODY, "prompt": "a \udcff fox"}).encode())
    assert status == 400 and answer["error"]["param"] == "prompt"
    assert "not UTF-8 text" in answer["error"]["message"]


def test_a_length_whose_frame_count_overflows_gets_a_400(client):
    """seconds x fps past the largest float: each is finite, their product is not."""
    for extra in ({"seconds": 1e308}, {"seconds": 5, "fps": 1e308}, {"seconds": "1e308"}):
        body = {key: value for key, value in BODY.items() if key != "num_frames"}
        status, answer = posted(client, json.dumps({**body, **extra}).encode())
        assert status == 400 and answer["error"]["param"] in ("seconds", "fps"), (extra, answer)


def test_bodies_that_are_no_json_object_get_a_400(client):
    whole = json.dumps(BODY).encode()
    cut = [whole[:n] for n in (0, 1, 10, len(whole) // 2, len(whole) - 1)]
    others = [b"\xff\xfe{}", b"[1]", b"null", b'"x"', b'{"prompt": 1' + b"0" * 5000 + b"}", b"[" * 100_000,
              b'{"prompt": "' + b"x" * 100_000 + b'"}']  # fmt: skip
    for body in [*cut, *others]:
        status, answer = posted(client, body)
        assert status == 400 and answer["error"]["message"], body[:40]


# ------------------------------------------------------------------------------ the data folder


SETTINGS = {"prompt": "a red fox", "negative_prompt": "", "width": 48, "height": 32, "frames": 5, "fps": 24.0,
            "steps": 2, "seed": 7}  # fmt: skip


def data_folder(root: Path) -> list[str]:
    """A data folder of three queued jobs, closed; their ids."""
    store = JobStore(root)
    ids = [new_job_id() for _ in range(3)]
    for job_id in ids:
        store.add(job_id, "tiny", SETTINGS, False, 100)
    store.close()
    return ids


def listed_jobs(root: Path) -> tuple:
    """Open the store and list its jobs, as a starting server does."""
    store = JobStore(root)
    try:
        store.recover()
        return store.page(None, 100, descending=True)
    finally:
        store.close()


def opened_or_refused(root: Path, unedited: tuple) -> None:
    """Refused with `MotifLiteError` naming the database, and the file left as it was, or opened listing the very
    jobs of the unedited one (a store that started over on an empty database, or lost rows, passed when any opening
    did)."""
    database = root / "jobs.sqlite3"
    damaged = database.read_bytes()
    try:
        jobs = listed_jobs(root)
    except MotifLiteError as exc:
        assert "jobs.sqlite3" in str(exc), f"{exc} does not name jobs.sqlite3"
        assert database.read_bytes() == damaged, f"a refused database was rewritten: {exc}"
        return
    assert jobs == unedited, "a damaged database read with other jobs"


def test_a_database_cut_short_or_with_flipped_bytes_is_refused_and_left_as_it_is(tmp_path):
    data_folder(tmp_path)
    database = tmp_path / "jobs.sqlite3"
    whole = database.read_bytes()
    copy = tmp_path / "unedited"  # opening a database writes to it: the unedited jobs are listed from a copy
    copy.mkdir()
    (copy / database.name).write_bytes(whole)
    unedited = listed_jobs(copy)
    assert len(unedited[0]) == 3
    cuts = [whole[:n] for n in (50, 100, 1000, 4096, 5000, len(whole) - 100)]
    flips = [
        whole[:i] + bytes([whole[i] ^ 0xFF]) + whole[i + 1 :] for i in (0, 16, 20, 28, 100, 4104, len(whole) - 200)
    ]
    for damaged in [*cuts, *flips]:
        database.write_bytes(damaged)
        opened_or_refused(tmp_path, unedited)
    database.write_bytes(whole[:5000])
    with pytest.raises(MotifLiteError, match=r"jobs.sqlite3 is damaged .*give --data another folder"):
        JobStore(tmp_path)
    assert database.read_bytes() == whole[:5000]


ROW_EDITS = {
    "settings": [
        "x",
        "[1]",
        "null",
        "{}",
        '{"prompt": "a", "width": "a", "height": 32, "frames": 5, "fps": 0}',
        '{"prompt": 1, "width": 48, "height": 32, "frames": 5, "fps": 24.0}',
        '{"prompt": "a", "width": 48, "height": 32, "fps": 24.0}',
        '{"prompt": "a", "width": 48, "height": 32, "frames": 5, "fps": 0}',
        '{"prompt": "a", "width": 48, "height": 32, "frames": 5, "fps": -24}',
    ],  # fmt: skip
    "effective": ["x", "[1]", "null"],
    "notes": ["x", '{"a": 1}', "null", "[1]"],
    "loras": ["x", "[1]", "[[1]]", '[["a", 1, 2]]', "null", "[[1, 0.5]]"],
    "progress": ["x"],
    "created_at": ["x", 1e300, -1e20, 253402300800],  # the last: 10000-01-01
    "started_at": ["x", 1e300],
    "completed_at": ["x"],
    "clip_frames": ["x", -3],
    "crf": ["x", 1.5],
}


@pytest.mark.parametrize("column", list(ROW_EDITS))
def test_a_row_edited_by_hand_is_refused_naming_the_job(tmp_path, column):
    ids = data_folder(tmp_path)
    database = tmp_path / "jobs.sqlite3"
    for value in ROW_EDITS[column]:
        with sqlite3.connect(database) as db:
            db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, ids[1]))
        with pytest.raises(MotifLiteError, match=f"holds 1 job this motif-lite cannot read \\({ids[1]}: {column}"):
            JobStore(tmp_path)


def test_every_damaged_row_is_named_with_its_id(tmp_path):
    ids = data_folder(tmp_path)
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET notes = 'x' WHERE id != ?", (ids[1],))
    with pytest.raises(MotifLiteError) as raised:
        JobStore(tmp_path)
    said = str(raised.value)
    assert "holds 2 jobs" in said and f"{ids[0]}: notes" in said and f"{ids[2]}: notes" in said
    assert f"WHERE id IN ('{ids[0]}', '{ids[2]}')" in said


def test_the_command_that_deletes_damaged_rows_works_as_pasted(tmp_path):
    """A data folder with a space in its path: the sqlite3 command the message gives is run as a shell reads it."""
    root = tmp_path / "my data"
    ids = data_folder(root)
    with sqlite3.connect(root / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET notes = 'x' WHERE id = ?", (ids[1],))
    db.close()
    with pytest.raises(MotifLiteError) as raised:
        JobStore(root)
    command = str(raised.value).split("delete those jobs (", 1)[1].rsplit("), or give --data", 1)[0]
    program, database, statement = shlex.split(command)
    assert program == "sqlite3" and Path(database) == root / "jobs.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute(statement)
    db.close()
    store = JobStore(root)
    assert [job.id for job in store.page(None, 10, descending=False)[0]] == [ids[0], ids[2]]
    store.close()


def test_a_damaged_index_is_refused_at_start_in_one_line(tmp_path):
    # Listing the jobs in order reads no index: only SQLite's own check finds this before a request does.
    data_folder(tmp_path)
    database = tmp_path / "jobs.sqlite3"
    with sqlite3.connect(database) as db:
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs_status'").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    damaged = bytearray(database.read_bytes())
    damaged[(page - 1) * page_size] = 0xFF  # no kind of page
    database.write_bytes(bytes(damaged))
    with pytest.raises(MotifLiteError, match=r"is damaged \(SQLite's check found: Page \d+") as raised:
        JobStore(tmp_path)
    assert "\n" not in str(raised.value) and "***" not in str(raised.value)


def test_a_database_out_of_reach_is_not_said_to_be_damaged(tmp_path):
    data_folder(tmp_path)
    (tmp_path / "jobs.sqlite3-wal").mkdir()  # SQLite cannot open its log: an OperationalError, the caller's to word
    with pytest.raises(sqlite3.OperationalError):
        JobStore(tmp_path)


def test_serve_refuses_a_damaged_data_folder_in_one_line(tmp_path, capsys, no_network):
    data_folder(tmp_path)
    database = tmp_path / "jobs.sqlite3"
    database.write_bytes(b"not a database" * 100)
    code = cli.main(["serve", "--data", str(tmp_path), "--port", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "jobs.sqlite3 is damaged (file is not a database)" in err
    assert database.read_bytes() == b"not a database" * 100


FORM = {"prompt": "a red fox", "size": "48x32", "num_frames": "5", "steps": "2", "seed": "7"}
FORM_FIELDS = [*FORM, "guidance_scale", "fps", "seconds", "extend", "loras", "crf", "loras[]", "loras[][name]",
               "loras[][strength]", "input_reference[image_url]"]  # fmt: skip
FORM_VALUES = ["x", "", "nan", "inf", "1e400", "-5", "0", "1" * 5000, "x" * 100_000, "[1]", "[" * 100_000,
               "[" + "1" * 5000 + "]"]  # fmt: skip


@pytest.mark.parametrize("field", FORM_FIELDS)
def test_every_wrong_form_value_gets_a_4xx_with_the_apis_error(client, field):
    for value in FORM_VALUES:
        response = client.post("/v1/videos", data={**FORM, field: value})
        answer = response.json()
        if response.status_code == 200:  # a value the field takes: queued, as a full queue's 429 said before
            assert client.delete(f"/v1/videos/{answer['id']}").status_code == 200
            continue
        assert 400 <= response.status_code < 500 and answer["error"]["message"], (value[:40], answer)


@pytest.mark.parametrize("field", ["num_frames", "loras"])
def test_a_form_integer_of_5000_digits_is_no_integer(client, field):
    # Before: a 500, from Python's own limit on the digits of an integer read from text.
    value = "1" * 5000 if field == "num_frames" else "[" + "1" * 5000 + "]"
    response = client.post("/v1/videos", data={**FORM, field: value})
    assert response.status_code == 400 and response.json()["error"]["param"] == field
    assert len(response.json()["error"]["message"]) < 200  # the value cut short, not 5000 digits repeated


def test_form_integers_are_read_up_to_4000_digits():
    from motif_lite.server.schema import _form_value

    assert _form_value(" 4294967295 ", int) == 4294967295
    assert _form_value("9" * 4000, int) == int("9" * 4000)
    # Longer: text, which the request's checks refuse as JSON's (test_server.py, a form value that is no number).
    assert _form_value("9" * 4001, int) == "9" * 4001


# The columns added after ROW_EDITS was written, each with an edit the store's checks must refuse: a prompt warning
# that is no text, and an uploaded video's record with a key of its own beside its name and sha256.
LATER_ROW_EDITS = {
    "prompt_warnings": ["[1]", '["cut", null]'],
    "extend_file": ['{"name": "clip.mp4"}', '{"name": "clip.mp4", "sha256": "ab", "size": "12"}'],
}


@pytest.mark.parametrize("column", list(LATER_ROW_EDITS))
def test_a_later_column_edited_by_hand_is_refused_naming_the_job(tmp_path, column):
    ids = data_folder(tmp_path)
    for value in LATER_ROW_EDITS[column]:
        with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
            db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, ids[1]))
        db.close()
        with pytest.raises(MotifLiteError, match=f"holds 1 job this motif-lite cannot read \\({ids[1]}: {column}"):
            JobStore(tmp_path)
