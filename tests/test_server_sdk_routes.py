"""The openai SDK's newer `client.videos` calls on `motif-lite serve`, in the test process on a tiny checkpoint:
`extend` queues the job a create with `extend` queues, `remix` queues the source's settings and seed with a new
prompt (and says so in `remixed_from_video_id`, across restarts and in an older data folder), each request that
cannot be served is refused before anything is queued, and `edit` and the character calls say what the server
offers instead."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
from server_helpers import TINY, InProcessServer, multipart, wait_for  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.server.job_record import Job, new_job_id  # noqa: E402
from motif_lite.server.jobs import JobStore  # noqa: E402
from motif_lite.server.remix import WITHOUT_ANY, remix_fields  # noqa: E402
from motif_lite.server.schema import ApiError, job_request_fields  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the SDK marks client.videos
PROMPT, NEXT = "a red fox runs through snow", "the fox stops and looks back"
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1)  # holds the worker: every test deletes it again
# Every setting a job can give, none of them its default: a remix must keep each one.
SETTINGS = dict(negative_prompt="blurry", fps=12, guidance_scale=3.0, guidance_method="cfg", flow_shift=5.0,
                sampling_method="dpm++2m", crf=30)  # fmt: skip
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


def finished(server: InProcessServer, **fields) -> dict:
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY, **fields})
    assert code == 200, video
    return server.wait_status(video["id"], ("completed",))


def video_bytes(server: InProcessServer, video_id: str) -> bytes:
    done = server.wait_status(video_id, ("completed", "failed"))
    assert done["status"] == "completed", done
    return server.request("GET", f"/v1/videos/{video_id}/content")[1]


def frames_of(data: bytes, folder: Path) -> list[bytes]:
    """The decoded frames of a video (two extensions' files differ in the name of the clip their settings keep)."""
    import imageio_ffmpeg

    path = folder / "decoded.mp4"
    path.write_bytes(data)
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # its metadata
    return list(reader)


def png_data_url() -> str:
    import PIL.Image

    buffer = io.BytesIO()
    PIL.Image.new("RGB", (48, 32), (200, 80, 40)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def error_of(server: InProcessServer, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    code, answer, _ = server.request(method, path, body, headers)
    return code, answer["error"]


def listed_ids(server: InProcessServer) -> list[str]:
    return [video["id"] for video in server.request("GET", "/v1/videos")[1]["data"]]


# client.videos.extend


def test_the_sdks_extend_queues_the_job_a_create_with_extend_queues(server, tmp_path):
    clip = finished(server, fps=12)
    client = server.client()
    # openai 3.57 cannot send video={"id": ...} itself (it takes every `video` for a file): the id goes in extra_body.
    extension = client.videos.extend(prompt=NEXT, seconds="1", video=openai.omit,
                                     extra_body={"video": {"id": clip["id"]}, "steps": 1, "seed": 8})  # fmt: skip
    code, created, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, "seconds": "1", "extend": clip["id"],
                                                             "steps": 1, "seed": 8})  # fmt: skip
    assert code == 200, created
    assert extension.settings == created["settings"] and extension.notes == created["notes"]
    # `seconds` is the new part's length, counted at the clip's rate (13 frames at 12 fps), as for `extend`; the
    # answer's `seconds` is the whole file's (5 + 13 - 1 frames), as OpenAI's says of an extension.
    assert (extension.settings["extend"], extension.settings["num_frames"], extension.seconds) == (clip["id"], 13,
                                                                                                   "1.33")  # fmt: skip
    frames = frames_of(video_bytes(server, extension.id), tmp_path)
    assert len(frames) == 17 and frames == frames_of(video_bytes(server, created["id"]), tmp_path)
    # curl's JSON body, with the id as OpenAI documents it
    body = {"prompt": NEXT, "seconds": "1", "steps": 1, "seed": 8, "video": {"id": clip["id"]}}
    code, plain, _ = server.request("POST", "/v1/videos/extensions", body)
    assert code == 200 and plain["settings"] == created["settings"], plain


def test_the_sdks_extend_with_a_file_goes_on_from_the_uploaded_video(server, tmp_path):
    import hashlib

    clip = finished(server, fps=12)
    path = tmp_path / "fox.mp4"
    path.write_bytes(server.request("GET", f"/v1/videos/{clip['id']}/content")[1])
    client = server.client()
    with open(path, "rb") as video:  # the SDK's natural call: a multipart body with the file as `video`
        extension = client.videos.extend(prompt=NEXT, seconds="1", video=video, extra_body={"steps": 1, "seed": 8})
    record = {"name": "fox.mp4", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "frames": 5}
    assert (extension.settings["extend"], extension.settings["extend_file"]) == (None, record)
    assert (extension.size, extension.settings["num_frames"], extension.seconds) == ("48x32", 13, "1.33")
    by_id = client.videos.extend(prompt=NEXT, seconds="1", video=openai.omit,
                                 extra_body={"video": {"id": clip["id"]}, "steps": 1, "seed": 8})  # fmt: skip
    # The same frames as going on from the server's own file by its id: the upload is that file.
    frames = frames_of(video_bytes(server, extension.id), tmp_path)
    assert len(frames) == 17 and frames == frames_of(video_bytes(server, by_id.id), tmp_path)
    assert client.videos.retrieve(extension.id).settings["extend_file"] == record  # kept once it ended
    assert list((server.store.root / "inputs").iterdir()) == []


def test_an_extension_that_cannot_be_made_is_refused_naming_video(server):
    clip = finished(server)
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    server.wait_status(running["id"], ("in_progress",))
    before = listed_ids(server)
    client = server.client()
    missing = "video_" + "0" * 32
    for reference, message in [
        ({"id": missing}, f"video: no video {missing} on this server"),
        ({"id": running["id"]}, "is in_progress: only a completed video can be extended; wait"),
        ({"id": "../videos/x.mp4"}, "video must be the id of a completed video of this server"),
        ("video_x", 'video must be {"id": "video_..."}'),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.videos.extend(prompt=NEXT, seconds="4", video=openai.omit, extra_body={"video": reference})
        assert refused.value.body["param"] == "video" and message in refused.value.body["message"], refused.value.body
    with pytest.raises(openai.BadRequestError) as refused:  # the SDK's upload of a file that is no video
        client.videos.extend(prompt=NEXT, seconds="4", video=("clip.mp4", b"\0" * 64, "video/mp4"))
    assert refused.value.body["param"] == "video" and refused.value.body["message"].startswith(
        "video: clip.mp4 has no video that ffmpeg can read"
    )
    code, error = error_of(server, "POST", "/v1/videos/extensions", {"prompt": NEXT, "size": "64x32",
                                                                     "video": {"id": clip["id"]}})  # fmt: skip
    assert (code, error["param"]) == (400, "video") and "an extension keeps the size" in error["message"], error
    code, error = error_of(server, "POST", "/v1/videos/extensions", {"prompt": NEXT, "video": {"id": clip["id"],
                                                                                         "seconds": "4"}})  # fmt: skip
    assert (code, error["param"]) == (400, "video") and 'video must be {"id": "video_..."}' in error["message"], error
    code, error = error_of(server, "POST", "/v1/videos/extensions", {"prompt": NEXT})
    assert (code, error["param"], error["code"]) == (400, "video", "missing_required_parameter"), error
    code, error = error_of(server, "POST", "/v1/videos/extensions", {"prompt": NEXT, "extend": clip["id"]})
    assert (code, error["param"]) == (400, "video") and "give video=" in error["message"], error
    code, error = error_of(server, "POST", "/v1/videos/extensions", {"video": {"id": clip["id"]}})
    assert (code, error["param"]) == (400, "prompt"), error
    assert listed_ids(server) == before and list((server.store.root / "inputs").iterdir()) == []
    assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200


# client.videos.remix


def test_a_remix_keeps_the_seed_and_settings_with_the_new_prompt(server):
    source = finished(server, **SETTINGS)
    client = server.client()
    remix = client.videos.remix(source["id"], prompt=NEXT)
    assert remix.remixed_from_video_id == source["id"] and source["remixed_from_video_id"] is None
    assert remix.prompt == NEXT and remix.settings == source["settings"]  # the seed, the crf, ... all of them
    code, same, _ = server.request("POST", "/v1/videos", {"prompt": NEXT, **TINY, **SETTINGS})
    assert code == 200 and same["remixed_from_video_id"] is None
    assert video_bytes(server, remix.id) == video_bytes(server, same["id"])  # the same noise, the new words
    # A field given wins over the source's; `seconds` counts at the source's rate: 1 s at 12 fps is 13 frames.
    changed = client.videos.remix(source["id"], prompt=NEXT, extra_body={"steps": 1, "seconds": "1"})
    assert (changed.settings["steps"], changed.settings["num_frames"]) == (1, 13)
    assert {**changed.settings, "steps": 2, "num_frames": 5} == source["settings"]
    assert server.request("DELETE", f"/v1/videos/{changed.id}")[0] == 200


def test_a_remix_of_an_extension_goes_on_from_the_same_video_and_one_of_an_image_needs_it_again(server):
    clip = finished(server)
    extension = server.request("POST", "/v1/videos", {"prompt": NEXT, "extend": clip["id"], "steps": 1, "seed": 3,
                                                      "num_frames": 5})[1]  # fmt: skip
    server.wait_status(extension["id"], ("completed",))
    client = server.client()
    remix = client.videos.remix(extension["id"], prompt="it trots off")
    assert remix.settings == extension["settings"] and remix.settings["extend"] == clip["id"]
    assert server.wait_status(remix.id, ("completed", "failed"))["status"] == "completed"

    image = finished(server, input_reference={"image_url": png_data_url()})
    with pytest.raises(openai.BadRequestError) as refused:  # its first frame is not kept once the job ends
        client.videos.remix(image["id"], prompt=NEXT)
    assert refused.value.body["param"] == "input_reference" and "send the image again" in refused.value.body["message"]
    again = client.videos.remix(image["id"], prompt=NEXT, extra_body={"input_reference": {"image_url": png_data_url()}})
    assert again.settings == image["settings"] and again.settings["image_to_video"] is True
    assert server.request("DELETE", f"/v1/videos/{again.id}")[0] == 200


def test_what_cannot_be_remixed_is_refused_before_anything_is_queued(server):
    source = finished(server)
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    queued = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    server.wait_status(running["id"], ("in_progress",))
    before = listed_ids(server)
    client = server.client()
    with pytest.raises(openai.NotFoundError):
        client.videos.remix("video_" + "0" * 32, prompt=NEXT)
    for job, status in ((running, "in_progress"), (queued, "queued")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.videos.remix(job["id"], prompt=NEXT)
        assert refused.value.body["param"] == "video_id", refused.value.body
        assert f"is {status}: only a completed video can be remixed; wait" in refused.value.body["message"]
    code, error = error_of(server, "POST", f"/v1/videos/{source['id']}/remix", {})
    assert (code, error["param"], error["code"]) == (400, "prompt", "missing_required_parameter"), error
    assert "a remix is the video's settings and seed with a new prompt" in error["message"], error
    code, error = error_of(server, "POST", f"/v1/videos/{source['id']}/remix", {"prompt": NEXT, "num_steps": 1})
    assert (code, error["code"]) == (400, "unknown_parameter"), error
    code, error = error_of(server, "POST", f"/v1/videos/{source['id']}/remix", {"prompt": NEXT, "steps": 0})
    assert (code, error["param"]) == (400, "steps"), error
    assert listed_ids(server) == before
    for job in (queued, running):
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200


def test_a_remix_says_so_after_a_restart_and_an_older_data_folder_remixes(pipe, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(OLD_FOLDER, data)
    (old,) = (path.stem for path in (data / "videos").glob("*.mp4"))
    with InProcessServer(pipe, data) as server:
        assert server.request("GET", f"/v1/videos/{old}")[1]["remixed_from_video_id"] is None
        remix = server.client().videos.remix(old, prompt=NEXT)
        assert remix.settings["seed"] == 7 and remix.size == "64x64" and remix.settings["num_frames"] == 9
        assert server.wait_status(remix.id, ("completed", "failed"))["status"] == "completed"
    database = sqlite3.connect(data / "jobs.sqlite3")
    assert "remixed_from" in {row[1] for row in database.execute("PRAGMA table_info(jobs)")}
    database.close()
    with InProcessServer(pipe, data) as server:
        assert server.request("GET", f"/v1/videos/{remix.id}")[1]["remixed_from_video_id"] == old
        assert server.request("GET", f"/v1/videos/{old}")[1]["remixed_from_video_id"] is None


def completed_job(store: JobStore, error: tuple[str, str] | None = None, **add) -> Job:
    """A job of `store` that ran to its end (failed with `error`), without a server."""
    settings = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=2))
    job = store.add(new_job_id(), "tiny", settings, False, 10, **add)
    assert store.claim_next().id == job.id and store.finish(job.id, error)
    return store.get(job.id)


def test_a_remix_keeps_the_loras_and_a_failed_video_is_refused_without_a_wait(tmp_path):
    store = JobStore(tmp_path)
    try:
        source = completed_job(store, loras=[("style.safetensors", 0.5)])
        folder = tmp_path / "loras"
        folder.mkdir()
        (folder / "style.safetensors").write_bytes(b"a LoRA")
        fields = remix_fields(source, {"prompt": NEXT}, None, folder)
        assert fields["loras"] == [{"name": "style.safetensors", "strength": 0.5}]
        with pytest.raises(ApiError) as refused:
            remix_fields(completed_job(store, ("generation_failed", "boom")), {"prompt": NEXT}, None)
        assert refused.value.message.endswith("is failed: only a completed video can be remixed"), refused.value
    finally:
        store.close()


def test_a_form_remix_takes_an_uploaded_first_frame_and_reads_empty_fields_as_none(server):
    source = finished(server, input_reference={"image_url": png_data_url()})
    png = ("first.png", base64.b64decode(png_data_url().split(",")[1]), "image/png")
    remix_route = f"/v1/videos/{source['id']}/remix"
    # "" is a form's none (the SDK's): the source's length, and no first frame
    body, headers = multipart({"prompt": NEXT, "steps": "1", "seconds": ""}, {"input_reference": png})
    code, remix, _ = server.request("POST", remix_route, body, headers)
    assert code == 200 and {**remix["settings"], "steps": 2} == source["settings"], remix
    body, headers = multipart({"prompt": NEXT, "input_reference": ""}, {})
    code, error = error_of(server, "POST", remix_route, body, headers)
    assert (code, error["param"]) == (400, "input_reference"), error
    assert server.request("DELETE", f"/v1/videos/{remix['id']}")[0] == 200


def test_a_remixed_from_edited_by_hand_into_no_video_id_is_refused_at_start(tmp_path):
    store = JobStore(tmp_path)
    job = completed_job(store, remixed_from=new_job_id())
    store.close()
    for value in ("../videos/x", 7):
        with sqlite3.connect(tmp_path / "jobs.sqlite3") as database:
            database.execute("UPDATE jobs SET remixed_from = ? WHERE id = ?", (value, job.id))
        database.close()
        with pytest.raises(MotifLiteError, match=f"{job.id}: remixed_from is not a video id"):
            JobStore(tmp_path)


# client.videos.edit, create_character, get_character


def test_edits_and_characters_say_what_the_server_offers_instead(server):
    client = server.client()
    calls = [
        (lambda: client.videos.edit(prompt=NEXT, video=("clip.mp4", b"\0" * 64, "video/mp4")), "does not edit videos",
         "video"),
        (lambda: client.videos.create_character(name="fox", video=("fox.mp4", b"\0" * 64, "video/mp4")),
         "has no characters", "video"),
        (lambda: client.videos.get_character("char_123"), "has no characters", "character_id"),
    ]  # fmt: skip
    for call, message, param in calls:
        with pytest.raises(openai.BadRequestError) as refused:  # a 400: the SDK does not retry it
            call()
        body = refused.value.body
        assert (body["param"], body["code"]) == (param, "unsupported") and message in body["message"], body
        assert "first frame" in body["message"] and "client.videos.remix" in body["message"], body
    body, headers = multipart({"prompt": NEXT, "video[id]": "video_" + "0" * 32}, {})
    code, error = error_of(server, "POST", "/v1/videos/edits", body, headers)
    assert (code, error["code"]) == (400, "unsupported"), error
    assert listed_ids(server) == []


def test_the_pages_remix_button_sends_the_new_prompt_to_the_remix_route(server):
    from selenium.webdriver.common.by import By
    from test_server_page import browser, type_into

    driver = browser()
    try:
        source = finished(server, seed=5, **SETTINGS)
        driver.get(server.url + "/")
        card = f'li.job[data-id="{source["id"]}"][data-status="completed"]'
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, card), 30, "the card of the finished video")
        driver.find_element(By.CSS_SELECTOR, card).find_element(By.XPATH, ".//button[text()='Remix']").click()
        assert driver.find_element(By.ID, "remixing").is_displayed()
        assert source["id"] in driver.find_element(By.ID, "remixing-text").text
        assert driver.find_element(By.ID, "prompt").get_attribute("value") == PROMPT  # to be rewritten
        type_into(driver, "prompt", NEXT)
        type_into(driver, "steps", "2")  # a field filled in replaces the source's
        driver.find_element(By.ID, "submit").click()

        def remix() -> dict | None:
            jobs = server.request("GET", "/v1/videos")[1]["data"]
            return next((job for job in jobs if job["remixed_from_video_id"] == source["id"]), None)

        video = server.wait_status(wait_for(remix, 30, "the remix to be queued")["id"], ("completed",))
        kept = ("seed", "num_frames", *SETTINGS)
        assert {key: video["settings"][key] for key in kept} == {key: source["settings"][key] for key in kept}
        assert (video["prompt"], video["size"], video["settings"]["steps"]) == (NEXT, source["size"], 2)
        shown = f'li.job[data-id="{video["id"]}"] .extends'
        text = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, shown).text, 30, "the card of the remix")
        assert text == f"remix of {source['id']}"
        assert not driver.find_element(By.ID, "remixing").is_displayed()  # the next Generate makes a new video
    finally:
        driver.quit()


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": NEXT, "video": "video_x"},  # the id alone
        {"prompt": NEXT, "video": {"id": "video_x", "seconds": "4"}},
        {"prompt": NEXT},
        {"prompt": NEXT, "extend": "video_x"},  # create's name
    ],
)
def test_the_shapes_an_extension_error_gives_are_json_a_client_can_copy(fields):
    # They were Python's {'id': 'video_...'}, which a curl or JavaScript client copying them sends as invalid JSON;
    # JSON's double quotes are Python too (the SDK's extra_body and video=).
    from motif_lite.server.extension import extension_fields

    with pytest.raises(ApiError) as refused:
        extension_fields(fields)
    shapes = re.findall(r"\{.*?\}", refused.value.message)
    assert shapes and json.loads(shapes[0]) == {"id": "video_..."}, refused.value.message


def test_the_data_url_shape_a_create_error_gives_is_json_a_client_can_copy():
    from motif_lite.server.schema import parse_create

    with pytest.raises(ApiError) as refused:
        parse_create({"prompt": NEXT, "input_reference": "https://example.com/fox.png"}, None, from_form=False)
    shape = re.search(r"\{.*\}", refused.value.message)[0]
    assert json.loads(shape) == {"image_url": "data:image/png;base64,..."}, refused.value.message


def test_the_first_frame_shape_a_remix_error_gives_is_json_a_client_can_copy():
    source = Job("video_" + "0" * 32, 1, "completed", 100, 0.0, 0.0, 1.0, "tiny", {"prompt": PROMPT}, {}, True, None,
                 None, [], [])  # fmt: skip  # made from a first frame, which the server does not keep
    with pytest.raises(ApiError) as refused:
        remix_fields(source, {"prompt": NEXT}, None)
    shape = re.search(r"extra_body=(\{.*\})\)", refused.value.message)[1]
    assert json.loads(shape) == {"input_reference": {"image_url": "data:image/png;base64,..."}}, refused.value.message


def test_a_remix_of_an_older_video_naming_a_lora_twice_says_the_source_did_and_takes_loras_sent_with_it(tmp_path):
    # An older motif-lite ran a job naming one LoRA file twice; its remix copied them and was refused with "loras
    # names a file twice", of a body that sent no loras.
    store = JobStore(tmp_path)
    try:
        source = completed_job(store, loras=[("style.safetensors", 0.5), ("style.safetensors", 0.25)])
        with pytest.raises(ApiError) as refused:
            remix_fields(source, {"prompt": NEXT}, None)
        said = refused.value.message
        assert said.startswith(f"video {source.id} was made with loras naming style.safetensors twice"), said
        assert refused.value.param == "loras"
        offered = json.loads(said.rpartition("summed strength, ")[2])
        assert offered == {"name": "style.safetensors", "strength": 0.75}
        fields = remix_fields(source, {"prompt": NEXT, "loras": [offered]}, None)  # sent with it: taken
        assert fields["loras"] == [offered]
    finally:
        store.close()


def test_a_remix_of_an_older_video_naming_a_lora_twice_among_others_offers_loras_that_keep_the_others(tmp_path):
    # The repeated file's object alone was offered: pasted as the remix's loras, it dropped the video's other LoRA.
    store = JobStore(tmp_path)
    try:
        source = completed_job(store, loras=[("style.safetensors", 0.5), ("detail.safetensors", 1.0),
                                             ("style.safetensors", 0.25)])  # fmt: skip
        with pytest.raises(ApiError) as refused:
            remix_fields(source, {"prompt": NEXT}, None)
        said = refused.value.message
        offered = json.loads(re.search(r"\(with its other LoRAs: loras (\[.*\])\)$", said)[1])
        fields = remix_fields(source, {"prompt": NEXT, "loras": offered}, None)
        assert [(lora["name"], lora["strength"]) for lora in fields["loras"]] == [
            ("style.safetensors", 0.75),
            ("detail.safetensors", 1.0),
        ], said
    finally:
        store.close()


def test_a_remix_of_a_video_naming_one_lora_by_a_name_and_a_link_says_the_source_did(pipe, tmp_path):
    # Names compared by their text let [style, a link to it] through; copied into the remix, they were refused as
    # if the client, who sent no loras, had sent them.
    from motif_lite.server.loras import lora_files
    from motif_lite.server.schema import parse_loras

    folder = tmp_path / "loras"
    folder.mkdir()
    for name in ("style.safetensors", "detail.safetensors"):
        (folder / name).write_bytes(b"a LoRA")
    (folder / "style-v2.safetensors").symlink_to("style.safetensors")
    with InProcessServer(pipe, tmp_path / "data", lora_dir=folder) as server:
        loras = [("style.safetensors", 0.5), ("detail.safetensors", 1.0), ("style-v2.safetensors", 0.25)]
        source = completed_job(server.store, loras=loras)
        code, error, _ = server.request("POST", f"/v1/videos/{source.id}/remix", {"prompt": NEXT})
        said = error["error"]["message"]
        assert code == 400 and error["error"]["param"] == "loras", error
        assert said.startswith(
            f"video {source.id} was made with loras naming 'style.safetensors' and 'style-v2.safetensors', one file "
            "of this server's LoRA folder (one name is a link to the other), which would apply twice (at 0.5 + 0.25); "
            "send loras with the remix, and name it once with the summed strength, "
        ), said
        offered = json.loads(re.search(r"\(with its other LoRAs: loras (\[.*\])\)$", said)[1])
        fields = remix_fields(source, {"prompt": NEXT, "loras": offered}, None, folder)  # sent with it: taken
        assert lora_files(parse_loras(fields["loras"], False), folder) == [
            ((folder / "style.safetensors").resolve(), 0.75),
            ((folder / "detail.safetensors").resolve(), 1.0),
        ]


def test_a_remix_of_a_video_whose_loras_are_gone_says_the_source_had_them_and_takes_loras_sent_with_it(pipe, tmp_path):
    # The source's LoRAs, copied into the remix, were refused as "no LoRA file ... in this server's LoRA folder" on a
    # loras field the client never sent: nothing told it that the video had them, nor that sending loras replaces them.
    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "detail.safetensors").write_bytes(b"a LoRA")
    with InProcessServer(pipe, tmp_path / "data", lora_dir=folder) as server:
        source = completed_job(server.store, loras=[("style.safetensors", 0.5)])  # removed from the folder since
        code, error, _ = server.request("POST", f"/v1/videos/{source.id}/remix", {"prompt": NEXT})
        assert code == 400 and error["error"]["param"] == "loras", error
        assert error["error"]["message"] == (
            f"video {source.id} was made with LoRAs this server can no longer apply, and its remix takes them unless "
            "loras is sent: no LoRA file 'style.safetensors' in this server's LoRA folder (available: "
            f"detail.safetensors); send loras with the remix to replace them ({WITHOUT_ANY})"
        ), error
        for sent in ([], [{"name": "detail.safetensors", "strength": 1.0}]):  # sent with it: taken in their place
            assert remix_fields(source, {"prompt": NEXT, "loras": sent}, None, folder)["loras"] == sent
    store = JobStore(tmp_path / "elsewhere")
    try:  # a server started without --lora-dir: told as the source's too
        source = completed_job(store, loras=[("style.safetensors", 0.5)])
        with pytest.raises(ApiError) as refused:
            remix_fields(source, {"prompt": NEXT}, None)
        said = refused.value.message
        assert said.startswith(f"video {source.id} was made with LoRAs this server can no longer apply"), said
        assert "this server takes no per-job LoRAs" in said and said.endswith(f"({WITHOUT_ANY})"), said
    finally:
        store.close()


def test_a_form_remix_of_a_video_whose_loras_are_gone_is_told_how_a_form_sends_no_loras_and_that_works(pipe, tmp_path):
    # The advice said "loras [] makes it without any", which a multipart remix (one that sends its first frame again)
    # cannot send as such: the SDK's form encoding of an empty list sends no field. A form's loras is JSON text.
    folder = tmp_path / "loras"
    folder.mkdir()
    with InProcessServer(pipe, tmp_path / "data", lora_dir=folder) as server:
        source = completed_job(server.store, loras=[("style.safetensors", 0.5)])  # removed from the folder since
        remix_route = f"/v1/videos/{source.id}/remix"
        body, headers = multipart({"prompt": NEXT}, {})
        code, error = error_of(server, "POST", remix_route, body, headers)
        said = error["message"]
        assert code == 400 and said.endswith("in a multipart form, loras=[] as JSON text: curl -F 'loras=[]')"), said
        body, headers = multipart({"prompt": NEXT, "loras": "[]"}, {})  # as the advice says
        code, remix, _ = server.request("POST", remix_route, body, headers)
        assert code == 200 and remix["settings"]["loras"] == [], remix
        assert server.request("DELETE", f"/v1/videos/{remix['id']}")[0] == 200
