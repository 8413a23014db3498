"""`motif-lite serve` going on from one of its finished videos (the create field `extend`), in the test process on a
tiny checkpoint: the longer video is the one `GenerationRequest(extend=...)` makes from the same clip, every request
that cannot go on is refused before it is queued, a queued extension keeps its clip when that video is deleted and
across a restart, and a data folder of an older version opens and its videos can be extended."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
pytest.importorskip("openai")
from server_helpers import TINY, InProcessServer, multipart, tiny_negative_note, wait_for  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402
from motif_lite.io.settings_file import read_settings  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.server.job_record import new_job_id  # noqa: E402
from motif_lite.server.jobs import SCHEMA_VERSION, JobStore  # noqa: E402
from motif_lite.server.schema import job_request_fields  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the SDK marks client.videos
PROMPT, NEXT = "a red fox runs through snow", "the fox stops and looks back"
NEW_PART = dict(num_frames=5, steps=1, seed=8)
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1)  # holds the worker: every test deletes it again
SMALL = dict(width=48, height=32, frames=5, steps=1, seed=3)  # GenerationRequest fields
OLD_FOLDER = Path(__file__).parent / "data" / "old_formats" / "50ae301" / "serve-data"  # a version 3 database


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture
def server(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data") as running:
        yield running


def frames_of(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


def png_bytes() -> bytes:
    import PIL.Image

    buffer = io.BytesIO()
    PIL.Image.new("RGB", (48, 32), (200, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def finished(server: InProcessServer, **fields) -> dict:
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY, **fields})
    assert code == 200, video
    return server.wait_status(video["id"], ("completed",))


def refused(server: InProcessServer, body: dict, message: str) -> None:
    code, error, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, **body})
    assert code == 400, error
    assert (error["error"]["param"], error["error"]["code"]) == ("extend", "invalid_value")
    assert message in error["error"]["message"], error


def test_an_extension_is_the_clips_frames_then_the_new_ones_as_generate_makes_them(server, pipe, tmp_path):
    clip = finished(server)
    client = server.client()
    video = client.videos.create_and_poll(prompt=NEXT, poll_interval_ms=100,
                                          extra_body={"extend": clip["id"], **NEW_PART})  # fmt: skip
    assert video.status == "completed", video
    assert (video.settings["extend"], video.size, video.settings["num_frames"]) == (clip["id"], "48x32", 5)
    assert video.settings["image_to_video"] is True and video.settings["fps"] == 24
    assert video.seconds == "0.33"  # the whole file: 5 + 5 - 1 frames at 24 fps, (9 - 1) / 24 s
    # The note says the file's length as the video object does (it said 0.38 s, 9 / 24).
    assert video.notes == [f"going on from {clip['id']} (5 frames, 48x32 at 24 fps): its last frame is the first "
                           "frame; the video holds its 5 frames and 4 new ones, 9 in all (0.33 s at 24 fps); the clip "
                           "is decoded and encoded again with them, frame by frame",
                           tiny_negative_note(pipe)]  # fmt: skip
    assert f"{video.id}: started (48x32, 5 frames, 1 step, going on from {clip['id']})" in server.log
    served = tmp_path / "served.mp4"
    served.write_bytes(client.videos.download_content(video.id).content)
    (tmp_path / "clip.mp4").write_bytes(client.videos.download_content(clip["id"]).content)
    # The file's settings name the video it went on from by its download's name, not the job's copy of it.
    assert read_settings(served).values["extend"] == f"{clip['id']}.mp4"

    request = GenerationRequest(NEXT, width=48, height=32, frames=5, steps=1, seed=8, extend=tmp_path / "clip.mp4",
                                output=tmp_path / "direct.mp4")  # fmt: skip
    assert pipe.generate(request).frames_written == 9
    frames = frames_of(served)
    assert frames.shape == (9, 32, 48, 3) and np.array_equal(frames, frames_of(tmp_path / "direct.mp4"))
    clip_frames = frames_of(tmp_path / "clip.mp4").astype(int)
    assert np.abs(frames[:5] - clip_frames).mean() < 4  # the clip's frames, encoded a second time
    thumbnail = client.videos.download_content(video.id, variant="thumbnail").content
    (tmp_path / "thumbnail.webp").write_bytes(thumbnail)
    import PIL.Image

    first = np.asarray(PIL.Image.open(tmp_path / "thumbnail.webp").convert("RGB")).astype(int)
    assert np.abs(first - frames[0]).mean() < 12  # the whole file's first frame: the clip's
    assert list((server.store.root / "inputs").iterdir()) == []  # its hold on the clip is gone once it ended


def finished_elsewhere(data: Path) -> tuple[str, str]:
    """(a failed job, a completed one whose video was removed by hand) in the store of the data folder `data`."""
    store = JobStore(data)
    try:
        ids = []
        for error in (("generation_failed", "boom"), None):
            job = store.add(new_job_id(), "tiny", job_request_fields(GenerationRequest(PROMPT, **SMALL)), False, 10)
            assert store.claim_next().id == job.id and store.finish(job.id, error)
            ids.append(job.id)
        return ids[0], ids[1]
    finally:
        store.close()


def test_what_cannot_be_extended_is_refused_before_it_is_queued(pipe, tmp_path):
    failed, lost = finished_elsewhere(tmp_path / "data")
    with InProcessServer(pipe, tmp_path / "data") as server:
        refusals_before_anything_is_queued(server, failed, lost)


def listed_ids(server: InProcessServer) -> list[str]:
    return [video["id"] for video in server.request("GET", "/v1/videos")[1]["data"]]


def refusals_before_anything_is_queued(server: InProcessServer, failed: str, lost: str) -> None:
    clip = finished(server, fps=12)
    store = server.store
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    queued = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    server.wait_status(running["id"], ("in_progress",))
    before = listed_ids(server)

    refused(server, {"extend": new_job_id()}, "no video video_")
    refused(server, {"extend": "../videos/x.mp4"}, "extend must be the id of a completed video")
    refused(server, {"extend": running["id"]}, "is in_progress: only a completed video can be extended; wait")
    refused(server, {"extend": queued["id"]}, "is queued: only a completed video can be extended; wait")
    refused(server, {"extend": failed}, "is failed: only a completed video can be extended")
    refused(server, {"extend": lost}, f"the video file of {lost} is not in the data folder")
    refused(server, {"extend": clip["id"], "size": "64x32"}, "is 48x32, and an extension keeps the size")
    png = png_bytes()
    image = {"image_url": "data:image/png;base64," + base64.b64encode(png).decode()}
    refused(server, {"extend": clip["id"], "input_reference": image}, "would both give the first frame")
    body, headers = multipart({"prompt": NEXT, "extend": clip["id"]}, {"input_reference": ("a.png", png, "image/png")})
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and error["error"]["param"] == "extend", error
    code, error, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], "steps": 0})
    assert code == 400 and error["error"]["param"] == "steps", error  # found once the clip was taken: let go again
    assert listed_ids(server) == before  # nothing was queued (the running job's progress may move meanwhile)
    assert list((store.root / "inputs").iterdir()) == []  # and no file was left

    # The clip's size and rate are the defaults, `seconds` counted at that rate: 1 s at 12 fps is 13 frames.
    code, extension, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], "seconds": "1"})
    assert code == 200, extension
    assert (extension["size"], extension["settings"]["fps"], extension["settings"]["num_frames"]) == ("48x32", 12, 13)
    # The whole file's frames, exact (`seconds` is to the hundredth): the clip's, then the 12 after its last frame.
    assert clip["frames"] == clip["settings"]["num_frames"] and extension["frames"] == clip["frames"] + 12
    code, same_size, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], "size": "48x32"})
    assert code == 200 and same_size["settings"]["extend"] == clip["id"]
    for job in (same_size, extension, queued, running):
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200
    assert server.request("DELETE", f"/v1/videos/{clip['id']}")[0] == 200
    refused(server, {"extend": clip["id"]}, f"no video {clip['id']} on this server (never made here, or deleted)")


def test_deleting_the_extended_video_leaves_a_queued_extension_its_clip(server, tmp_path):
    clip = finished(server)
    (tmp_path / "clip.mp4").write_bytes(server.request("GET", f"/v1/videos/{clip['id']}/content")[1])
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    code, extension, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], **NEW_PART})
    assert code == 200, extension
    assert server.request("DELETE", f"/v1/videos/{clip['id']}")[0] == 200  # allowed: the extension has its own hold
    assert not (server.store.root / "videos" / f"{clip['id']}.mp4").exists()
    assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
    done = server.wait_status(extension["id"], ("completed", "failed"))
    assert done["status"] == "completed" and done["settings"]["extend"] == clip["id"], done  # the id, for the chain
    served = tmp_path / "served.mp4"
    served.write_bytes(server.request("GET", f"/v1/videos/{extension['id']}/content")[1])
    frames = frames_of(served).astype(int)
    assert frames.shape[0] == 9 and np.abs(frames[:5] - frames_of(tmp_path / "clip.mp4")).mean() < 4
    assert list((server.store.root / "inputs").iterdir()) == []


def test_a_queued_extension_survives_a_restart(pipe, tmp_path):
    data = tmp_path / "data"
    with InProcessServer(pipe, data) as server:
        clip = finished(server)
        running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
        extension = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], **NEW_PART})[1]
        server.wait_status(running["id"], ("in_progress",))
    assert (data / "inputs" / f"{extension['id']}.mp4").is_file()
    with InProcessServer(pipe, data) as server:  # start again: recover() keeps a queued extension's clip
        assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
        done = server.wait_status(extension["id"], ("completed", "failed"))
        assert done["status"] == "completed" and done["settings"]["extend"] == clip["id"], done
        assert done["seconds"] == "0.33"


def test_an_extension_of_a_server_video_is_held_to_the_upload_limits_when_queued_and_after_a_restart(pipe, tmp_path):
    # An extension reads the video it goes on from whole and writes it again whole with its new frames, so extensions
    # of extensions grow it: an uploaded video was held to --max-video-upload-mb and 40 megapixels, one of this
    # server's to no limit, at submission and again as a queued one started after a restart.
    from motif_lite.server.worker import NO_LONGER_FITS

    data = tmp_path / "data"
    with InProcessServer(pipe, data) as server:
        clip = finished(server)
        running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
        body = {"prompt": NEXT, "extend": clip["id"], **NEW_PART}
        queued = server.request("POST", "/v1/videos", body)[1]
        server.wait_status(running["id"], ("in_progress",))
    size = (data / "videos" / f"{clip['id']}.mp4").stat().st_size

    def refused_now(server: InProcessServer, code: str) -> str:  # the same body, sent now; on the extensions route
        status, error, _ = server.request("POST", "/v1/videos", body)
        assert status == 400 and (error["error"]["param"], error["error"]["code"]) == ("extend", code), error
        assert clip["id"] in error["error"]["message"] and str(data) not in error["error"]["message"], error
        routed = {"prompt": NEXT, "video": {"id": clip["id"]}}
        status, in_video, _ = server.request("POST", "/v1/videos/extensions", routed)
        assert status == 400 and (in_video["error"]["param"], in_video["error"]["code"]) == ("video", code), in_video
        return error["error"]["message"]

    with InProcessServer(pipe, data, max_video_upload_bytes=size - 1) as server:
        assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
        said = refused_now(server, "video_too_large")
        assert "--max-video-upload-mb" in said, said
        # The refused submissions kept no copy of the clip: at most the queued job's own, until it fails below.
        assert {path.name for path in (data / "inputs").iterdir()} <= {f"{queued['id']}.mp4"}
        failed = server.wait_status(queued["id"], ("failed", "completed"))  # it fails before it starts, as refused
        assert failed["error"] == {"code": "invalid_request", "message": f"{NO_LONGER_FITS}: {said}"}, failed
    with InProcessServer(pipe, data, max_image_pixels=48 * 32 - 1) as server:
        assert "48x32, more than the 1,535 pixels" in refused_now(server, "invalid_value")
        assert list((data / "inputs").iterdir()) == []  # nothing was queued, nor kept


def test_an_older_data_folder_opens_and_its_videos_can_be_extended(pipe, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(OLD_FOLDER, data)
    (old,) = (path.stem for path in (data / "videos").glob("*.mp4"))
    store = JobStore(data)  # a job queued by the version before extensions: its settings hold `extend: null`
    queued = store.add(new_job_id(), "tiny", {**job_request_fields(GenerationRequest(PROMPT, **SMALL)), "extend": None},
                       False, 10)  # fmt: skip
    store.close()
    database = sqlite3.connect(data / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in database.execute("PRAGMA table_info(jobs)")}
    database.close()
    assert {"extend", "clip_frames"} <= columns
    with InProcessServer(pipe, data) as server:
        assert server.wait_status(queued.id, ("completed", "failed"))["status"] == "completed"
        code, listed, _ = server.request("GET", f"/v1/videos/{old}")
        assert code == 200 and listed["settings"]["extend"] is None and listed["seconds"] == "0.33"  # 9 frames
        body = {"prompt": NEXT, "extend": old, "num_frames": 5, "steps": 1}
        code, extension, _ = server.request("POST", "/v1/videos", body)
        assert code == 200 and extension["size"] == "64x64", extension
        done = server.wait_status(extension["id"], ("completed", "failed"))
        assert done["status"] == "completed", done
        assert done["seconds"] == "0.5"  # 9 + 5 - 1 frames at 24 fps
        served = tmp_path / "served.mp4"
        served.write_bytes(server.request("GET", f"/v1/videos/{extension['id']}/content")[1])
        assert frames_of(served).shape == (13, 64, 64, 3)


def test_the_pages_extend_button_fills_the_form_for_the_next_part(pipe, tmp_path):
    from selenium.webdriver.common.by import By
    from test_server_page import browser, type_into

    driver = browser()
    try:
        with InProcessServer(pipe, tmp_path / "data") as server:
            clip = finished(server)
            driver.get(server.url + "/")
            card = f'li.job[data-id="{clip["id"]}"][data-status="completed"]'
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, card), 30, "the card of the finished video")
            extend = driver.find_element(By.CSS_SELECTOR, card).find_element(By.XPATH, ".//button[text()='Extend']")
            driver.find_element(By.ID, "prompt").send_keys("a prompt of the clip's")
            extend.click()
            assert driver.find_element(By.ID, "extending").is_displayed()
            assert clip["id"] in driver.find_element(By.ID, "extending-text").text
            assert driver.find_element(By.ID, "prompt").get_attribute("value") == ""  # the new part's, to write
            size = [driver.find_element(By.ID, name) for name in ("size", "width", "height")]
            assert [e.get_attribute("value") for e in size] == ["custom", "48", "32"]
            assert not any(e.is_enabled() for e in (*size, driver.find_element(By.ID, "image")))
            driver.find_element(By.ID, "prompt").send_keys(NEXT)
            for field, value in (("frames", "5"), ("steps", "1")):
                type_into(driver, field, value)
            driver.find_element(By.ID, "submit").click()

            def extension() -> dict | None:
                jobs = server.request("GET", "/v1/videos")[1]["data"]
                return next((job for job in jobs if job["settings"]["extend"] == clip["id"]), None)

            video = server.wait_status(wait_for(extension, 30, "the extension to be queued")["id"], ("completed",))
            assert (video["prompt"], video["size"], video["settings"]["num_frames"]) == (NEXT, "48x32", 5)
            shown = f'li.job[data-id="{video["id"]}"] .extends'
            text = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, shown).text, 30, "the card of the extension")
            assert text == f"extends {clip['id']}"
            assert not driver.find_element(By.ID, "extending").is_displayed()  # the next Generate makes a new video
            assert driver.find_element(By.ID, "size").is_enabled()
    finally:
        driver.quit()


def test_an_extension_an_orderly_stop_queued_again_goes_on_to_the_same_video(pipe, tmp_path):
    from motif_lite.server.worker import Worker, percent

    store = JobStore(tmp_path)
    lines: list[str] = []
    worker = Worker(store, pipe, lines.append)
    settings = job_request_fields(GenerationRequest(PROMPT, **SMALL))
    try:
        clip = store.add(new_job_id(), "tiny", settings, False, 10)
        worker.run_job(store.claim_next())
        videos = {}
        for stop_at in (None, percent("denoise", 1, 3)):  # uninterrupted, then stopped after step 2 of 3
            job = store.add(new_job_id(), "tiny", {**settings, "steps": 3, "seed": 9}, False, 10,
                            extend=store.get(clip.id))  # fmt: skip
            store.keep_clip(clip.id, job.id)
            run_until(worker, stop_at)
            if stop_at is not None:
                assert store.get(job.id).status == "queued" and store.clip_path(job.id).is_file()
                run_until(worker, None)
                assert f"{job.id}: goes on from step 2 of 3" in lines
            assert store.get(job.id).status == "completed", lines
            videos[stop_at] = store.video_path(job.id)
        assert np.array_equal(*(frames_of(path) for path in videos.values()))
    finally:
        store.close()


def run_until(worker, stop_at: int | None) -> None:
    """The worker runs its store's next job; an orderly stop arrives once its progress reaches `stop_at`."""
    report = worker.store.set_progress

    def set_progress(job_id: str, progress: int) -> bool:
        if stop_at is not None and progress >= stop_at:
            worker._stopping.set()  # what `Worker.stop()` sets: the job stops after its current step
        return report(job_id, progress)

    worker.store.set_progress = set_progress
    try:
        worker.run_job(worker.store.claim_next())
    finally:
        worker.store.set_progress = report
        worker._stopping.clear()


def test_the_clip_is_linked_copied_where_links_fail_and_missing_when_deleted(tmp_path, monkeypatch):
    import errno
    import os

    store = JobStore(tmp_path)
    try:
        clip, linked, copied = new_job_id(), new_job_id(), new_job_id()
        store.video_path(clip).write_bytes(b"mp4")
        assert os.path.samefile(store.keep_clip(clip, linked), store.video_path(clip))  # a link: no space taken

        def no_links(source, target):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "link", no_links)  # videos/ on another file system than inputs/
        kept = store.keep_clip(clip, copied)
        assert kept.read_bytes() == b"mp4" and not os.path.samefile(kept, store.video_path(clip))
        monkeypatch.undo()
        store.video_path(clip).unlink()
        with pytest.raises(FileNotFoundError):
            store.keep_clip(clip, new_job_id())
    finally:
        store.close()


def test_an_extension_decodes_its_clip_only_for_its_last_frame_and_the_file(server, monkeypatch, clip_reads):
    # The server wrote the video and knows its frames: the check at submission and the worker's one read each
    # decoded all of it to count them (a second or two for a 720p clip), on top of the pipeline's two decodes.
    import imageio_ffmpeg

    from motif_lite.io import clip as clip_module

    counted, decoded = [], []
    count, frames = imageio_ffmpeg.count_frames_and_secs, clip_module.clip_frames
    monkeypatch.setattr(imageio_ffmpeg, "count_frames_and_secs", lambda path, **kw: counted.append(Path(path)) or
                        count(path, **kw))  # fmt: skip
    monkeypatch.setattr(clip_module, "clip_frames", lambda clip: decoded.append(clip.path) or frames(clip))
    clip = finished(server)
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]  # holds the worker
    server.wait_status(running["id"], ("in_progress",))
    clip_reads.clear()
    code, extension, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], **NEW_PART})
    assert code == 200, extension
    link = server.store.clip_path(extension["id"])
    assert (clip_reads, counted, decoded) == ([link], [], [])  # checked from its headers alone
    assert "(5 frames, 48x32 at 24 fps)" in extension["notes"][0]  # the frames the server counted as it wrote it
    assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
    assert server.wait_status(extension["id"], ("completed", "failed"))["status"] == "completed"
    assert (clip_reads, counted, decoded) == ([link, link], [], [link, link])  # its last frame, then the file's


def test_an_extended_video_cut_short_by_hand_is_refused_when_the_extension_is_submitted(server):
    clip = finished(server)
    video = server.store.video_path(clip["id"])
    video.write_bytes(video.read_bytes()[:-100])  # the same file as the extension's link to it
    refused(server, {"extend": clip["id"]}, f"{clip['id']} is cut short (a copy interrupted, a disk that filled?)")
    assert list((server.store.root / "inputs").iterdir()) == []


def test_an_extension_whose_clip_is_cut_while_queued_fails_naming_the_video(server):
    # The worker reads the clip it was given (its headers, with the frames the server counted): one damaged on disk
    # since the job was queued fails that job, named by the id of its video as the client knows it, not by the
    # server's path to it.
    clip = finished(server)
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]  # holds the worker
    code, extension, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], **NEW_PART})
    assert code == 200, extension
    link = server.store.clip_path(extension["id"])
    link.write_bytes(link.read_bytes()[:-100])
    assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
    message = server.wait_status(extension["id"], ("failed",))["error"]["message"]
    assert f"{clip['id']} is cut short" in message and str(link) not in message, message


# An uploaded video to go on from: `extend` as a multipart file on create (the SDK's `client.videos.extend` with a
# file is in test_server_sdk_routes.py).


def write_clip(path: Path, width: int, height: int, frames: int, fps: float = 24) -> Path:
    """A small H.264 clip of its own (not one this server wrote), as a user uploads one."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, macro_block_size=1, quality=None,
                                         output_params=["-crf", "18"])  # fmt: skip
    writer.send(None)
    for index in range(frames):
        writer.send(np.full((height, width, 3), 40 + 20 * index, np.uint8).tobytes())
    writer.close()
    return path


def upload(server: InProcessServer, data: bytes, name: str = "clip.mp4", route: str = "/v1/videos", **fields):
    field = "video" if route.endswith("extensions") else "extend"
    body, headers = multipart({"prompt": NEXT, **fields}, {field: (name, data, "video/mp4")})
    return server.request("POST", route, body, headers)


def test_an_uploaded_video_is_extended_as_run_extend_extends_the_file(server, pipe, tmp_path):
    clip = write_clip(tmp_path / "my clip.mp4", 48, 32, 9, fps=12)
    data = clip.read_bytes()
    code, queued, _ = upload(server, data, "folder/my clip.mp4", steps=1, seed=8, seconds="1")
    assert code == 200, queued
    # The clip's size and rate are the defaults (`seconds` counted at 12 fps: 13 frames), as for `run --extend`.
    assert (queued["size"], queued["settings"]["fps"], queued["settings"]["num_frames"]) == ("48x32", 12, 13)
    record = {"name": "my clip.mp4", "sha256": hashlib.sha256(data).hexdigest(), "frames": 9}  # the name only
    assert queued["settings"]["extend"] is None and queued["settings"]["extend_file"] == record
    assert queued["settings"]["image_to_video"] is True and queued["seconds"] == "1.67"  # (9 + 13 - 1 - 1) / 12
    assert queued["notes"][0].startswith("going on from my clip.mp4 (9 frames, 48x32 at 12 fps): its last frame")
    assert (server.store.root / "inputs" / f"{queued['id']}.mp4").read_bytes() == data  # beside the job
    done = server.wait_status(queued["id"], ("completed", "failed"))
    assert done["status"] == "completed" and done["settings"]["extend_file"] == record, done
    assert f"{queued['id']}: started (48x32, 13 frames, 1 step, going on from my clip.mp4)" in server.log
    served = tmp_path / "served.mp4"
    served.write_bytes(server.request("GET", f"/v1/videos/{queued['id']}/content")[1])
    stored = read_settings(served).values  # what run --settings-from and a remix read: the upload as it was sent
    assert (stored["extend"], stored["extend_sha256"]) == ("my clip.mp4", record["sha256"])
    request = GenerationRequest(NEXT, width=48, height=32, frames=13, fps=12, steps=1, seed=8, extend=clip,
                                output=tmp_path / "direct.mp4")  # fmt: skip
    assert pipe.generate(request).frames_written == 21
    assert np.array_equal(frames_of(served), frames_of(tmp_path / "direct.mp4"))  # the video run --extend makes
    assert list((server.store.root / "inputs").iterdir()) == []  # removed once the job ended


def test_an_uploaded_video_that_cannot_be_extended_is_refused_before_it_is_queued(pipe, tmp_path):
    import socket

    limits = dict(max_video_upload_bytes=200_000, max_image_pixels=64 * 48)
    with InProcessServer(pipe, tmp_path / "data", **limits) as server:
        good = write_clip(tmp_path / "good.mp4", 48, 32, 5).read_bytes()
        cases = [
            (b"", "extend: clip.mp4 is empty (0 bytes): send the video file's contents"),
            (png_bytes(), "clip.mp4 is one image, not a clip: to start a video from it, send it as input_reference"),
            (good[: len(good) // 2], "clip.mp4 is cut short (a copy interrupted, a disk that filled?)"),
            (b"\0" * 64, "clip.mp4 has no video that ffmpeg can read"),
            (np.random.default_rng(0).bytes(5000), "clip.mp4 has no video that ffmpeg can read"),
            (write_clip(tmp_path / "one.mp4", 48, 32, 1).read_bytes(), "clip.mp4 has 1 frame: there is nothing to go "
             "on from but an image; start image-to-video from such a frame with input_reference instead"),
            (write_clip(tmp_path / "odd.mp4", 50, 30, 5).read_bytes(), "clip.mp4 is 50x30: the model makes sides in "
             "multiples of 16: resize the clip first, e.g. ffmpeg -i clip.mp4 -vf scale=48:32 -crf 18 "
             "clip-48x32.mp4, and send that"),
            (write_clip(tmp_path / "big.mp4", 80, 64, 5).read_bytes(), "extend: clip.mp4 is 80x64, more than the "
             "3,072 pixels a frame this server takes"),  # from its header: none of its frames decoded
        ]  # fmt: skip
        for route in ("/v1/videos", "/v1/videos/extensions"):
            for data, message in cases:
                code, error, _ = upload(server, data, route=route)
                param = "video" if route.endswith("extensions") else "extend"
                assert (code, error["error"]["param"], error["error"]["code"]) == (400, param, "invalid_value"), error
                expected = message.replace("extend:", "video:") if param == "video" else message
                assert expected in error["error"]["message"], error
                assert "inputs/" not in error["error"]["message"] and "video_" not in error["error"]["message"]
        for fields, param, message in [
            # the size to give in the API's field alone (it said "size 48x32 (width=48, height=32)", Python's too)
            (
                {"size": "64x32"},
                "extend",
                "good.mp4 is 48x32 and the new frames would be 64x32: one video has one "
                "size; give size 48x32, or leave them out",
            ),
            ({"num_frames": 1}, "extend", "going on from a clip needs num_frames 5 or more"),
            ({"steps": 0}, "steps", "steps"),
        ]:
            code, error, _ = upload(server, good, "good.mp4", **fields)
            assert (code, error["error"]["param"]) == (400, param) and message in error["error"]["message"], error
        image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
        code, error, _ = upload(server, good, **{"input_reference[image_url]": image})
        assert (code, error["error"]["param"]) == (400, "extend") and "would both give the first frame" in str(error)
        files = {"extend": ("good.mp4", good, "video/mp4"), "input_reference": ("a.png", png_bytes(), "image/png")}
        code, error, _ = server.request("POST", "/v1/videos", *multipart({"prompt": NEXT}, files))
        assert (code, error["error"]["param"]) == (400, "input_reference"), error  # one file a request
        over = good + b"\0" * 200_000  # over --max-video-upload-mb, within the body limit: 413 naming the flag
        code, error, _ = upload(server, over)
        assert (code, error["error"]["code"], error["error"]["param"]) == (413, "video_too_large", "extend"), error
        assert "--max-video-upload-mb 0.190735: videos to extend up to 0.190735 MiB" in error["error"]["message"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:  # a declared 1 GB: refused
            raw.sendall(b"POST /v1/videos/extensions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                        b"boundary=b\r\nContent-Length: 1000000000\r\n\r\n")  # fmt: skip
            assert raw.recv(4096).startswith(b"HTTP/1.1 413")
        assert server.request("GET", "/v1/videos")[1]["data"] == []  # nothing was queued
        assert list((server.store.root / "inputs").iterdir()) == []  # and no file was left


def test_a_queued_upload_extension_survives_a_restart_and_its_remix_needs_the_video_again(pipe, tmp_path):
    data = tmp_path / "data"
    clip = write_clip(tmp_path / "clip.mp4", 48, 32, 5)
    with InProcessServer(pipe, data) as server:
        running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
        code, extension, _ = upload(server, clip.read_bytes(), **NEW_PART)
        assert code == 200, extension
        server.wait_status(running["id"], ("in_progress",))
    assert (data / "inputs" / f"{extension['id']}.mp4").read_bytes() == clip.read_bytes()
    with InProcessServer(pipe, data) as server:  # recover() keeps a queued extension's uploaded video
        assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
        done = server.wait_status(extension["id"], ("completed", "failed"))
        assert done["status"] == "completed" and done["settings"]["extend_file"]["name"] == "clip.mp4", done
        assert list((data / "inputs").iterdir()) == []
        # A remix needs the video again: the server kept it only until the job ended.
        code, error, _ = server.request("POST", f"/v1/videos/{extension['id']}/remix", {"prompt": PROMPT})
        assert (code, error["error"]["param"], error["error"]["code"]) == (400, "extend", "missing_required_parameter")
        sha = done["settings"]["extend_file"]["sha256"]
        assert f"went on from an uploaded video (clip.mp4, sha256 {sha})" in error["error"]["message"], error
        body, headers = multipart({"prompt": PROMPT}, {"extend": ("clip.mp4", clip.read_bytes(), "video/mp4")})
        code, remix, _ = server.request("POST", f"/v1/videos/{extension['id']}/remix", body, headers)
        assert code == 200, remix
        assert remix["settings"] == done["settings"] and remix["remixed_from_video_id"] == extension["id"]
        assert not any("is not the video" in note for note in remix["notes"]), remix
        assert server.wait_status(remix["id"], ("completed", "failed"))["status"] == "completed"
        # Another file than the one it went on from (under the same name: the checksums tell them apart): remixed
        # from that file, with a note naming both.
        other = write_clip(tmp_path / "other.mp4", 48, 32, 9).read_bytes()
        body, headers = multipart({"prompt": PROMPT}, {"extend": ("clip.mp4", other, "video/mp4")})
        code, remix, _ = server.request("POST", f"/v1/videos/{extension['id']}/remix", body, headers)
        assert code == 200, remix
        assert remix["settings"]["extend_file"]["sha256"] == hashlib.sha256(other).hexdigest()
        assert (
            f"extend: clip.mp4 (sha256 {hashlib.sha256(other).hexdigest()}) is not the video {extension['id']} "
            f"went on from (clip.mp4, sha256 {sha}): the remix goes on from the file sent" in remix["notes"]
        ), remix
        assert server.request("DELETE", f"/v1/videos/{remix['id']}")[0] == 200
        # Its size is the file's, as for an extension (the video's would refuse it: one video has one size).
        wide = write_clip(tmp_path / "wide.mp4", 64, 32, 5).read_bytes()
        body, headers = multipart({"prompt": PROMPT}, {"extend": ("wide.mp4", wide, "video/mp4")})
        code, remix, _ = server.request("POST", f"/v1/videos/{extension['id']}/remix", body, headers)
        assert (code, remix.get("size")) == (200, "64x32"), remix
        assert server.request("DELETE", f"/v1/videos/{remix['id']}")[0] == 200


def test_a_one_frame_video_of_the_server_is_refused_in_the_apis_words(tmp_path):
    # The extend route read its own videos in run's words: "start image-to-video from it with -i instead".
    from types import SimpleNamespace

    from motif_lite.server.extension import checked_clip
    from motif_lite.server.schema import ApiError

    clip = write_clip(tmp_path / "video_abc.mp4", 48, 32, 1)
    with pytest.raises(ApiError) as refused:
        checked_clip(clip, SimpleNamespace(frames_in_file=1), {str(clip): "video_abc"})
    assert refused.value.param == "extend" and "input_reference" in refused.value.message, refused.value.message
    assert " -i " not in refused.value.message


def test_a_server_video_exactly_at_the_limits_may_be_extended(tmp_path):
    # The upload limits are inclusive (an upload of --max-video-upload-mb bytes is taken): a server video of that
    # size, or of frames of exactly --max-image-pixels, is no larger than an upload the server takes.
    from types import SimpleNamespace

    from motif_lite.server.clip_upload import check_server_video
    from motif_lite.server.schema import ApiError

    video = tmp_path / "video_1.mp4"
    video.write_bytes(b"\0" * 1000)
    clip = SimpleNamespace(width=48, height=32)  # the frame size a job read from the file already
    check_server_video(video, "video_1", max_bytes=1000, max_pixels=48 * 32, clip=clip)
    for limits in ({"max_bytes": 999, "max_pixels": 48 * 32}, {"max_bytes": 1000, "max_pixels": 48 * 32 - 1}):
        with pytest.raises(ApiError) as refused:
            check_server_video(video, "video_1", clip=clip, **limits)
        assert refused.value.param == "extend" and "video_1" in refused.value.message


def test_an_uploaded_video_with_sound_gets_a_note_whose_command_names_placeholders(server, tmp_path):
    # The server renames its own paths in notes: the output became "the video", and the command read
    # "ffmpeg -i the video -i clip.mp4 ...", which no shell runs.
    import subprocess

    from motif_lite.io.ffmpeg import find_ffmpeg

    clip = tmp_path / "with sound.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=48x32:rate=24", "-f",
                    "lavfi", "-i", "sine=frequency=440", "-t", "0.3", "-shortest", str(clip)], check=True)  # fmt: skip
    code, queued, _ = upload(server, clip.read_bytes(), "with sound.mp4", steps=1, seed=8, num_frames=5)
    assert code == 200, queued
    (note,) = [note for note in queued["notes"] if "has sound" in note]
    assert note.endswith(
        "put it back with ffmpeg -i VIDEO.mp4 -i CLIP -map 0:v -map 1:a -c:v copy with-sound.mp4, "
        "VIDEO.mp4 being this job's video once downloaded and CLIP the file sent, with sound.mp4"
    ), note
    assert server.wait_status(queued["id"], ("completed", "failed"))["status"] == "completed"
