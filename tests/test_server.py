"""`motif-lite serve` in the test process on a tiny checkpoint (CPU, fp32, 48x32): the official `openai` SDK end to
end with the served video equal to `motif-lite run`'s, image-to-video uploads, every error code in OpenAI's shape,
pagination, cancelling by DELETE, an orderly stop that queues the running job again, and 50 concurrent status polls
while a job runs. Servers listen on free loopback ports and are always stopped."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import functools
import hashlib
import io
import json
import os
import re
import shlex
import socket
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
from server_helpers import (  # noqa: E402
    TINY,
    InProcessServer,
    OutOfMemoryInAJob,
    head_request,
    multipart,
    tiny_negative_note,
    wait_for,
)

from motif_lite import cli, load_pipeline  # noqa: E402
from motif_lite.io.settings_file import read_settings  # noqa: E402
from motif_lite.request import TEMPORAL_FACTOR, GenerationRequest  # noqa: E402
from motif_lite.server import jobs  # noqa: E402
from motif_lite.server.job_record import COMPLETED, FAILED, INTERRUPTED, QUEUED, new_job_id  # noqa: E402
from motif_lite.server.jobs import DataFolderBusy, JobStore  # noqa: E402
from motif_lite.server.schema import effective_settings, job_request_fields  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the SDK marks client.videos
PROMPT = "a red fox runs through snow"
# Minutes of work: every test that queues it deletes it again.
LONG = dict(size="48x32", num_frames=5, steps=1000, seed=1, negative_prompt="blurry")
SDK_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")  # openai.types.VideoSize


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


def png(width: int = 40, height: int = 24, flat: bool = False) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if flat:  # compresses to almost nothing
        pixels[:] = 128
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def frames_of(video: bytes, tmp_path, name: str) -> np.ndarray:
    import imageio_ffmpeg

    path = tmp_path / name
    path.write_bytes(video)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def test_sdk_end_to_end_equals_motif_lite_run(server, checkpoint, tmp_path):
    client = server.client()
    video = client.videos.create_and_poll(
        prompt=PROMPT, size="48x32", poll_interval_ms=100, extra_body={"num_frames": 5, "steps": 2, "seed": 7}
    )
    assert video.status == "completed" and video.progress == 100 and video.error is None
    assert (video.object, video.size, video.prompt, video.model) == ("video", "48x32", PROMPT, "tiny")
    assert video.completed_at >= video.created_at and video.settings["seed"] == 7
    # What the request left open, as the checkpoint decides it (its APG guider and scheduler shift 15).
    effective = {k: video.settings[k] for k in ("guidance_method", "guidance_scale", "apg_norm_threshold",
                                                "apg_momentum", "flow_shift", "sampling_method")}  # fmt: skip
    assert effective == dict(guidance_method="apg", guidance_scale=8.0, apg_norm_threshold=12.0, apg_momentum=0.1,
                             flow_shift=15.0, sampling_method="euler")  # fmt: skip
    assert client.videos.retrieve(video.id).model_dump() == video.model_dump()
    assert [v.id for v in client.videos.list()] == [video.id]
    served = client.videos.download_content(video.id).content

    output = tmp_path / "run.mp4"
    args = ["run", "-m", str(checkpoint), "-p", PROMPT, "-W", "48", "-H", "32", "--video-frames", "5"]
    args += ["--steps", "2", "-s", "7", "--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(output)]
    assert cli.main(args) == 0
    assert served == output.read_bytes()  # the same pixels through the same encoder: the same bytes
    frames = frames_of(served, tmp_path, "served.mp4")
    assert frames.shape == (5, 32, 48, 3) and frames.std() > 10

    thumbnail = client.videos.download_content(video.id, variant="thumbnail")
    assert thumbnail.response.headers["content-type"] == "image/webp"
    first = np.asarray(PIL.Image.open(io.BytesIO(thumbnail.content)).convert("RGB")).astype(int)
    assert np.abs(first - frames[0]).mean() < 12  # lossy WebP of the first frame

    deleted = client.videos.delete(video.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (video.id, True, "video.deleted")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    assert list((server.store.root / "videos").iterdir()) == []


def test_seconds_map_to_frames_at_the_requested_fps(server):
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "size": "48x32", "seconds": "4"})
    assert code == 200 and video["settings"]["num_frames"] == 97 and video["seconds"] == "4"
    code, other, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "seconds": 2, "fps": 16})
    assert code == 200 and other["settings"]["num_frames"] == 33 and other["size"] == "1280x736"
    code, both, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "seconds": "4", "num_frames": 10})
    assert code == 200 and both["settings"]["num_frames"] == 9 and both["seconds"] == "0.33"  # 10 -> 4k+1 = 9
    presets = [server.request("POST", "/v1/videos", {"prompt": PROMPT, "size": size})[1] for size in SDK_SIZES]
    assert [v["size"] for v in presets] == list(SDK_SIZES)  # every size the SDK offers is valid
    for job in reversed((video, other, both, *presets)):  # the queued (large) ones before the running one
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200


def test_seconds_count_frames_as_runs_hint_does_and_no_rounding_note_names_a_count_never_sent(server, capsys):
    # `seconds` "4.75" made 117 frames, run's hint for `--video-frames 4.75s` 113; and "0.2" got the note "frames 6
    # is not 4k+1; using 5", a count of the API's own making under run's name for it.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", "--video-frames", "4.75s"])
    hinted = int(re.search(r"is --video-frames (\d+) ", capsys.readouterr().err)[1])
    long = {"prompt": PROMPT, **{name: value for name, value in LONG.items() if name != "num_frames"}}
    code, video, _ = server.request("POST", "/v1/videos", {**long, "seconds": "4.75"})
    assert code == 200 and video["settings"]["num_frames"] == hinted, (video, hinted)
    code, short, _ = server.request("POST", "/v1/videos", {**long, "seconds": "0.2"})
    assert code == 200 and short["settings"]["num_frames"] == 5 and not any("4k+1" in n for n in short["notes"])
    code, given, _ = server.request("POST", "/v1/videos", {**long, "num_frames": 6})
    assert code == 200 and "num_frames 6 is not 4k+1; using 5" in given["notes"], given["notes"]
    for job in (given, short, video):  # the queued ones before the running one
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200


def test_image_to_video_upload_equals_the_pipeline(server, pipe, tmp_path):
    client = server.client()
    image = png()
    video = client.videos.create_and_poll(
        prompt=PROMPT, input_reference=("first.png", image, "image/png"), poll_interval_ms=100, extra_body=TINY
    )
    assert video.status == "completed" and video.settings["image_to_video"] is True, video
    assert list((server.store.root / "inputs").iterdir()) == []  # the upload is gone once the job has ended
    (tmp_path / "first.png").write_bytes(image)
    request = GenerationRequest(PROMPT, width=48, height=32, frames=5, steps=2, seed=7, image=tmp_path / "first.png",
                                output=tmp_path / "direct.mp4")  # fmt: skip
    pipe.generate(request)
    served = frames_of(client.videos.download_content(video.id).content, tmp_path, "served.mp4")
    assert np.array_equal(served, frames_of((tmp_path / "direct.mp4").read_bytes(), tmp_path, "direct-copy.mp4"))
    # The file's settings name the image as it was sent, with its checksum, not the job's copy inputs/ID.png.
    sha = hashlib.sha256(image).hexdigest()
    stored = read_settings(tmp_path / "served.mp4").values
    assert (stored["image"], stored["image_sha256"]) == ("first.png", sha)

    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    code, queued, _ = server.request(
        "POST", "/v1/videos", {"prompt": PROMPT, "input_reference": {"image_url": data_url}}
    )
    assert code == 200 and queued["settings"]["image_to_video"] is True
    assert server.request("DELETE", f"/v1/videos/{queued['id']}")[0] == 200
    assert wait_for(lambda: not list((server.store.root / "inputs").iterdir()), 60, "the upload to be removed")
    # A data URL has no file name: the file names the field it came in, with the image's checksum.
    video = client.videos.create_and_poll(
        prompt=PROMPT, extra_body={**TINY, "input_reference": {"image_url": data_url}}, poll_interval_ms=100
    )
    assert video.status == "completed", video
    (tmp_path / "from-url.mp4").write_bytes(client.videos.download_content(video.id).content)
    stored = read_settings(tmp_path / "from-url.mp4").values
    assert (stored["image"], stored["image_sha256"]) == ("input_reference", sha)
    # Likewise a file sent without a name (it was "the uploaded video", the words for a video to extend).
    body, headers = multipart({"prompt": PROMPT, **{k: str(v) for k, v in TINY.items()}},
                              {"input_reference": ("", image, "image/png")})  # fmt: skip
    code, queued, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 200, queued
    done = lambda: server.request("GET", f"/v1/videos/{queued['id']}")[1]["status"] == "completed"  # noqa: E731
    wait_for(done, 60, "the job without a file name")
    (tmp_path / "unnamed.mp4").write_bytes(server.request("GET", f"/v1/videos/{queued['id']}/content")[1])
    stored = read_settings(tmp_path / "unnamed.mp4").values
    assert (stored["image"], stored["image_sha256"]) == ("input_reference", sha)


def test_an_empty_prompt_is_taken_with_a_first_frame(server):
    # "Animate this image": a JSON client's "" was refused as empty, and a form's (the SDK sends a create with a file
    # as one) as missing. Text-to-video still refuses it, in a form as in JSON.
    image = png()
    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    json_body = {"prompt": "", **TINY, "input_reference": {"image_url": data_url}}
    code, sent, _ = server.request("POST", "/v1/videos", json_body)
    assert code == 200 and sent["prompt"] == "" and sent["settings"]["image_to_video"] is True, sent
    body, headers = multipart({"prompt": "", **{k: str(v) for k, v in TINY.items()}},
                              {"input_reference": ("first.png", image, "image/png")})  # fmt: skip
    code, form, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 200 and form["prompt"] == "", form
    for job in (form, sent):  # the queued one before the running one
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200
    body, headers = multipart({"prompt": ""}, {})
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and error["error"]["message"].startswith("prompt is empty: text-to-video needs"), error


def test_a_forms_empty_negative_prompt_is_the_official_one_and_a_json_one_is_none(server):
    # The page's empty field (its placeholder says so), as the SDK's None; a JSON client asks for none with "".
    from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT

    body, headers = multipart({"prompt": PROMPT, "negative_prompt": "", **{k: str(v) for k, v in TINY.items()}}, {})
    code, form, _ = server.request("POST", "/v1/videos", body, headers)
    code_json, sent, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "negative_prompt": "", **TINY})
    assert (code, code_json) == (200, 200), (form, sent)
    assert form["settings"]["negative_prompt"] == OFFICIAL_NEGATIVE_PROMPT and sent["settings"]["negative_prompt"] == ""
    for job in (sent, form):
        assert server.request("DELETE", f"/v1/videos/{job['id']}")[0] == 200


def head_of(server: InProcessServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a HEAD request, whose answer has headers alone (`server.request` reads JSON), read
    off the socket: http.client would show an empty body whatever the server sent."""
    return head_request(server.port, path, headers)


def test_head_gives_a_videos_size_and_the_health_without_a_body(server):
    # `curl -I` (or a download manager, a load balancer's HEAD probe) was 405 on both: FastAPI's routes take only
    # the methods they name.
    head = functools.partial(head_of, server)
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
    assert code == 200, video
    server.wait_status(video["id"], ("completed",))
    content = f"/v1/videos/{video['id']}/content"
    code, data, _ = server.request("GET", content)
    status, headers, body = head(content)
    assert (status, headers["content-type"], int(headers["content-length"]), body) == (200, "video/mp4", len(data), b"")
    status, headers, body = head(content + "?variant=thumbnail")
    assert (status, headers["content-type"], body) == (200, "image/webp", b"")
    assert head("/health")[0] == 200
    assert head(f"/v1/videos/video_{'0' * 32}/content")[0] == 404  # an unknown id as for GET
    # The page too: an uptime monitor pointed at it sends HEAD (UptimeRobot's default), and saw the server down.
    status, headers, body = head("/")
    assert (status, headers["content-type"].split(";")[0], body) == (200, "text/html", b"")


def test_head_of_every_get_route_answers_as_its_get_without_a_body(server):
    # HEAD /v1/videos/ID (an HTTP client's probe of a URL, `curl -I`) was a 405: FastAPI's routes take only the
    # methods they name, and only the download and the health named HEAD.
    _, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
    server.wait_status(video["id"], ("completed",))
    routes = [f"/v1/videos/{video['id']}", "/v1/videos", "/v1/videos?limit=1", "/v1/models", "/v1/models/tiny",
              "/v1/info", "/v1/loras", f"/v1/videos/{video['id']}/content"]  # fmt: skip
    for path in routes:
        code, _, got = server.request("GET", path)
        status, headers, body = head_of(server, path)
        assert (status, body) == (code, b""), (path, status, body)
        assert headers["content-type"] == got["content-type"], path
        assert headers.get("openai-poll-after-ms") == got.get("openai-poll-after-ms"), path
    # Its refusals are the GET's too: an unknown id, a query the route does not take, a name that is not loopback.
    assert head_of(server, f"/v1/videos/video_{'0' * 32}")[0] == 404
    assert head_of(server, "/v1/videos?limt=1")[0] == 400
    assert head_of(server, f"/v1/videos/{video['id']}", {"Host": "evil.example"})[0] == 403


def test_a_range_the_download_cannot_use_gets_the_whole_file_or_the_apis_416(server):
    # Starlette answered a Range in another unit than bytes, or a malformed one, with a plain-text 400. RFC 9110
    # (14.2): a Range in a unit the server does not know is ignored, an invalid one may be; one past the end is a 416.
    video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
    server.wait_status(video.id, ("completed",))
    content = f"/v1/videos/{video.id}/content"
    whole = server.request("GET", content)[1]
    for ignored in ("items=0-9", "bytes", "bytes=abc", "bytes=5-3", "bytes=0-9;x", "bytes=,"):
        code, data, headers = server.request("GET", content, headers={"Range": ignored})
        assert (code, data == whole) == (200, True), ignored  # not the bytes: pytest's diff of a video fails
    code, data, headers = server.request("GET", content, headers={"Range": "bytes=0-9"})  # a usable one still is
    assert (code, data, headers["content-range"]) == (206, whole[:10], f"bytes 0-9/{len(whole)}")
    code, data, headers = server.request("GET", content, headers={"Range": "bytes=2-3, 99999999-"})  # the one in it
    assert (code, data) == (206, whole[2:4])
    code, error, headers = server.request("GET", content, headers={"Range": f"bytes={len(whole)}-"})
    assert (code, error["error"]["code"], headers["content-range"]) == (416, "range_not_satisfiable",
                                                                       f"bytes */{len(whole)}")  # fmt: skip
    stale = {"Range": f"bytes={len(whole)}-", "If-Range": '"an-older-etag"'}  # a changed file: the whole of it
    code, data, _ = server.request("GET", content, headers=stale)
    assert (code, data == whole) == (200, True)


def test_a_video_deleted_as_its_download_starts_is_the_apis_404_without_a_server_path(server, monkeypatch):
    # The file went between the route's lookup and the response's opening of it: a 500 whose message named the
    # file's path on the server. The DELETE is injected where the file is looked at on the disk (a thread's `stat`).
    video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
    server.wait_status(video.id, ("completed",))
    path = server.store.video_path(video.id)
    run_sync = anyio.to_thread.run_sync

    async def deleted_first(function, *args, **kwargs):
        called = function if not isinstance(function, functools.partial) else function.func
        called_with = args if not isinstance(function, functools.partial) else function.args
        if called is os.stat and called_with and Path(called_with[0]) == path:
            server.store.delete(video.id)  # the client's DELETE, at that moment
        return await run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", deleted_first)
    code, error, _ = server.request("GET", f"/v1/videos/{video.id}/content")
    assert (code, error["error"]["code"]) == (404, "not_found"), error
    assert error["error"]["message"] == f"no video with id {video.id!r}"
    assert str(server.store.root) not in json.dumps(error)


def test_image_to_video_notes_are_in_the_video_and_the_log_in_api_words(server, pipe, tmp_path):
    # `motif-lite run` prints that the alpha channel is dropped and which -W/-H keeps the image's shape; the server
    # showed neither.
    pixels = np.random.default_rng(1).integers(0, 256, (50, 100, 4), dtype=np.uint8)
    pixels[:10, :, 3] = 0  # transparent rows
    path = tmp_path / "wide.png"
    PIL.Image.fromarray(pixels, "RGBA").save(path)
    _, run_notes = GenerationRequest(PROMPT, width=48, height=32, frames=5, image=path).resolve()
    assert any("alpha channel is dropped" in note for note in run_notes)
    fitting = "-W 32 -H 16 (in Python width=32, height=16)"  # run's flags and the Python keywords; 2:1, no larger
    assert any(note.endswith(f"{fitting} keeps its shape") for note in run_notes)
    video = server.client().videos.create_and_poll(
        prompt=PROMPT, input_reference=("wide.png", path.read_bytes(), "image/png"), poll_interval_ms=100,
        extra_body=TINY,
    )  # fmt: skip
    assert video.status == "completed", video
    expected = [note.replace(fitting, "size 32x16") for note in run_notes]  # the API's field alone
    assert video.notes == [*expected, tiny_negative_note(pipe)]
    assert [line for line in server.log if ": note: " in line] == [f"{video.id}: note: {n}" for n in video.notes]
    code, one_frame, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "num_frames": 1,
        "input_reference": {"image_url": "data:image/png;base64," + base64.b64encode(png()).decode()}})  # fmt: skip
    assert code == 200 and any("use num_frames 5 or more for image-to-video" in n for n in one_frame["notes"])
    assert server.request("DELETE", f"/v1/videos/{one_frame['id']}")[0] == 200
    text = server.client().videos.create(prompt=PROMPT, extra_body=LONG)
    assert text.notes == []  # nothing to say
    server.client().videos.delete(text.id)


def test_a_video_longer_than_the_model_was_trained_for_is_told_how_a_client_goes_on_from_it(server):
    # The note gave run's command, its flag made a field by the server's regexes: "motif-lite run extend CLIP -p ...".
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "num_frames": 125})
    assert code == 200, video
    go_on = "make 121 frames and go on from them: a job with extend (that video's id) and a prompt of what happens next"
    assert video["notes"][0].endswith(go_on), video["notes"]
    assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_the_settings_refusals_name_the_api_fields_to_a_client():
    # The settings' checks named run's flags and Python's keywords, which the server rewrote with regexes into its
    # fields: they name the fields themselves now (Audience.API), and run's words stay run's.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.errors import Audience
    from motif_lite.request import RequestError
    from motif_lite.sampling.schedule import ScheduleOptions
    from motif_lite.settings import resolve_settings

    def refusal(configs: CheckpointConfigs, audience: Audience, **fields) -> str:
        with pytest.raises(RequestError) as refused:
            resolve_settings(GenerationRequest(PROMPT, **fields), configs, audience=audience)
        return str(refused.value)

    stretched = CheckpointConfigs(schedule=ScheduleOptions(shift_terminal=0.1))
    assert refusal(stretched, Audience.API, steps=1).endswith("give steps 2 or more, or sampling_method dpm++2m")
    assert refusal(stretched, Audience.RUN_OR_PYTHON, steps=1).endswith(
        'give --steps 2 (in Python steps=2) or more, or --sampling-method dpm++2m (in Python sampler="dpm++2m")'
    )
    deis = CheckpointConfigs(scheduler={"_class_name": "DEISMultistepScheduler"})
    assert "choose one with sampling_method: euler, dpm++2m or unipc" in refusal(deis, Audience.API)
    assert "choose one with --sampling-method (in Python sampler=): euler" in refusal(deis, Audience.RUN_OR_PYTHON)


def test_the_lora_tag_note_tells_a_client_the_loras_field():
    # A1111's <lora:...> tags in a job's prompt: the note gives the `loras` field that applies them, not run's --lora.
    from motif_lite.errors import Audience
    from motif_lite.prompt_notes import syntax_notes

    (note,) = syntax_notes("a fox <lora:snow:0.8> <lora:my style>", "prompt", Audience.API)
    loras = '[{"name": "snow.safetensors", "strength": 0.8}, {"name": "my style.safetensors"}]'
    assert note.endswith(f'to apply them, give loras {loras} (docs/server.md, "Per-job LoRAs")'), note


NOT_A_PNG = "data:image/png;base64,AAAA"
# The request's messages in the API's field names (num_frames, guidance_scale, sampling_method: they said "frames",
# "cfg scale", "sampler", the names of neither the API nor `motif-lite run`).
BAD_BODIES = [
    # A side's line in the API's words: the field is `size`, which holds both sides (it said "width 50 ...").
    (
        {"prompt": PROMPT, "size": "50x32"},
        "size 50x32: its width is not a multiple of 16; nearest valid width: 48",
        "size",
    ),
    ({"prompt": PROMPT, "size": "64x0"}, "size 64x0: its height must be a positive integer", "size"),
    ({"prompt": PROMPT, "steps": 0}, "steps must be an integer from 1 to 1000 (the official", "steps"),
    ({"prompt": PROMPT, "steps": 2.5}, "steps must be an integer from 1 to 1000 (the", "steps"),
    ({"prompt": PROMPT, "num_frames": "9"}, "num_frames must be a positive integer, got '9'", "num_frames"),
    ({"prompt": PROMPT, "seed": -5}, "seed must be a whole number from 0 to 4294967295, or -1", "seed"),
    ({"prompt": PROMPT, "sampling_method": "ddim"}, "unknown sampling_method 'ddim'; choose one", "sampling_method"),
    (
        {"prompt": PROMPT, "guidance_method": "ap"},
        "unknown guidance_method 'ap'; choose one of apg, cfg; did you mean apg?",
        "guidance_method",
    ),
    ({"prompt": PROMPT, "guidance_scale": -1}, "guidance_scale must be a number from 0 to 100 (", "guidance_scale"),
    ({"prompt": PROMPT, "fps": 0}, "fps must be a number from 0.001 to 1000 (a frame every 1000 s", "fps"),
    # Values that were queued and then failed (or held the worker for good): refused at submit, with their range.
    ({"prompt": PROMPT, "steps": 10**38}, "steps must be an integer from 1 to 1000", "steps"),
    ({"prompt": "fox " * 5001}, "prompt is 20,004 characters, over the 20,000 taken", "prompt"),
    ({"prompt": PROMPT, "negative_prompt": "x" * 20_001}, "negative_prompt is 20,001 characters", "negative_prompt"),
    ({"prompt": PROMPT, "fps": 1e308}, "fps must be a number from 0.001 to 1000", "fps"),
    ({"prompt": PROMPT, "guidance_scale": 1e308}, "guidance_scale must be a number from 0 to 100", "guidance_scale"),
    ({"prompt": PROMPT, "flow_shift": 1e-300}, "flow_shift must be a number from 0.01 to 100", "flow_shift"),
    ({"prompt": PROMPT, "size": "1000000000x736"}, "transformer tokens, over the 1,048,576", "size"),
    ({"prompt": PROMPT, "size": "64x64", "num_frames": 10**7}, "transformer tokens, over the 1,048,576", "num_frames"),
    (
        {"prompt": "  "},
        "prompt is empty: text-to-video needs what the video shows; an empty prompt is taken only with a first frame "
        "(input_reference or extend), which it then animates with no text",
        "prompt",
    ),
    (  # the CLI's message in the API's field names: it said "--apg-eta, ... not CFG (--guidance cfg); add --guidance"
        {"prompt": PROMPT, "guidance_method": "cfg", "apg_momentum": 0.2},
        "apg_eta, apg_norm_threshold and apg_momentum apply to APG guidance, not CFG (guidance_method cfg); add "
        "guidance_method apg to guide with APG",
        "apg_momentum",
    ),
    ({"prompt": PROMPT, "step": 2}, "unknown parameter 'step'; did you mean 'steps'? (known: prompt,", "step"),
    ({"prompt": PROMPT, "num_inference_steps": 2}, "did you mean 'steps'?", "num_inference_steps"),
    # diffusers' and ComfyUI's width and height, or a whole size in one of them: the size field, written out
    ({"prompt": PROMPT, "width": 64}, "'width'; the size is one field here, 'size': 'WIDTHxHEIGHT' (e.g.", "width"),
    ({"prompt": PROMPT, "width": "64x48"}, "the size is one field here, 'size': '64x48' (known: prompt,", "width"),
    ({"prompt": PROMPT, "width": "720p"}, "the size is one field here, 'size': '1280x720' (known:", "width"),
    (
        {"prompt": PROMPT, "width": 64, "height": "48"},
        "'height'; the size is one field here, 'size': '64x48'",
        "height",
    ),
    (
        {"prompt": PROMPT, "size": "720p"},
        "size must be 'WIDTHxHEIGHT' (e.g. '1280x736'), got '720p': that is '12",
        "size",
    ),
    ({"prompt": PROMPT, "size": "832*480"}, "got '832*480': that is '832x480'", "size"),
    ({"prompt": PROMPT, "zzz": 1}, "unknown parameter 'zzz' (known: prompt,", "zzz"),
    # A whole-number float gets crf's hint (JSON encoders write a float 5 as 5.0), not a bare "got 5.0"
    (
        {"prompt": PROMPT, "num_frames": 5.0},
        "num_frames must be a positive integer, got 5.0 (a float: give 5)",
        "num_frames",
    ),
    ({"prompt": PROMPT, "steps": 20.0}, "got 20.0 (a float: give 20)", "steps"),
    ({"prompt": PROMPT, "seed": 3.0}, "got 3.0 (a float: give 3)", "seed"),
    ({"prompt": PROMPT, "num_frames": -5.0}, "must be a positive integer, got -5.0", "num_frames"),
    ({"prompt": PROMPT, "duration": 4}, "unknown parameter 'duration'; did you mean 'seconds'?", "duration"),
    ({"prompt": PROMPT, "sizes": "64x64"}, "unknown parameter 'sizes'; did you mean 'size'?", "sizes"),  # OpenAI's
    ({"prompt": PROMPT, "zzz": 1, "step": 2}, "unknown parameter 'step'; did you mean 'steps'?", "step"),  # the first
    ({"negative_prompt": "x"}, "prompt is required", "prompt"),
    ({"prompt": PROMPT, "size": "big"}, "size must be 'WIDTHxHEIGHT'", "size"),
    ({"prompt": PROMPT, "seconds": "-4"}, "seconds must be a positive number", "seconds"),
    # A length of too many frames was refused as num_frames, a field the client never sent.
    (
        {"prompt": PROMPT, "seconds": 10**30},
        "seconds 1000000000000000000000000000000 at 24 fps is more frames than a video may have (4,194,301 at most",
        "seconds",
    ),
    ({"prompt": PROMPT, "seconds": "1e30"}, "seconds '1e30' at 24 fps is more frames than a video", "seconds"),
    ({"prompt": PROMPT, "seconds": 100}, "seconds 100 at 24 fps is 2401 frames: 1280x736x2401 (width", "seconds"),
    ({"prompt": PROMPT, "seconds": 10**400}, "at 24 fps is more frames than a video may have", "seconds"),  # a 500
    ({"prompt": PROMPT, "seconds": 1, "fps": 10**400}, "fps must be a positive number, got 1000", "fps"),  # a 500
    ({"prompt": PROMPT, "seconds": "inf"}, "seconds must be a positive number, got 'inf'", "seconds"),
    ({"prompt": PROMPT, "seconds": 1e300, "fps": 1e300}, "more frames than a video may have", "seconds"),
    ({"prompt": PROMPT, "input_reference": {"image_url": "https://a.com/a.png"}}, "fetches no URLs", "input_reference"),
    ({"prompt": PROMPT, "input_reference": {"image_url": NOT_A_PNG}}, "not a readable image", "input_reference"),
]


def test_the_param_of_several_invalid_settings_is_the_first_lines_field(server):
    # RequestError.fields follows the message's lines: the param is the first line's field, not the last one's.
    code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "steps": 0, "fps": -1})
    assert code == 400 and error["error"]["message"].index("steps") < error["error"]["message"].index("fps")
    assert error["error"]["param"] == "steps"


def test_request_error_fields_and_their_api_params(tmp_path):
    from motif_lite.errors import MotifLiteError
    from motif_lite.request import RequestError
    from motif_lite.server.schema import api_param

    with pytest.raises(RequestError) as gif:  # the GIF's frame-rate check is the fps field's, not the output's
        GenerationRequest(PROMPT, output=str(tmp_path / "a.gif"), fps=200).resolve()
    assert gif.value.fields == ("fps",)
    with pytest.raises(RequestError) as sides:
        GenerationRequest(PROMPT, width=0, height=-16).resolve()
    assert sides.value.fields == ("width", "height")  # each side its own, in the order of the lines
    image = tmp_path / "a_0.png"
    PIL.Image.new("RGB", (8, 8)).save(image)
    with pytest.raises(RequestError, match="would replace the input image") as replaced:
        GenerationRequest(PROMPT, image=str(image), output=str(tmp_path / "a_%d.png"), frames=1).resolve()
    assert replaced.value.fields == ("output",)  # the server's own path: no param of the client's
    assert api_param(replaced.value) is None
    assert api_param(RequestError("x", ("image",))) == "input_reference"
    assert api_param(RequestError("x", ("height", "width"))) == "size"
    assert api_param(MotifLiteError("not a request's")) is None  # other errors carry no fields


def test_every_motif_field_is_the_api_field_the_checks_name():
    # The checks' messages to a client name the request's fields as API_FIELDS says; each Motif field of the API is
    # the one of its request field, and every field run's messages name has one.
    from motif_lite.request import API_FIELDS, RUN_FLAGS
    from motif_lite.server.schema import MOTIF_FIELDS

    assert all(API_FIELDS[field] == name for name, (field, _) in MOTIF_FIELDS.items())
    assert set(RUN_FLAGS) <= set(API_FIELDS)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("frame_rate", "fps"),
        ("noise_seed", "seed"),
        ("init_image", "input_reference"),
        ("input_image", "input_reference"),
        ("frame_num", "num_frames"),
        ("sample_shift", "flow_shift"),
    ],
)
def test_other_tools_names_that_run_and_python_know_get_the_servers_field(name, meant):
    # The server kept a table of its own that lacked these (run's hints and GenerationRequest named them): one
    # table, request.OTHER_FIELD_NAMES, serves all three.
    from motif_lite.server.schema import ApiError, parse_create

    with pytest.raises(ApiError) as error:
        parse_create({"prompt": PROMPT, name: 5}, None, from_form=False)
    assert f"unknown parameter {name!r}; did you mean {meant!r}?" in str(error.value), str(error.value)


def test_each_other_apis_field_name_points_at_a_field_of_ours():
    from motif_lite.server.schema import MOTIF_FIELDS, OPENAI_FIELDS, OTHER_API_FIELDS, SERVER_FIELDS

    known = set(OPENAI_FIELDS) | set(MOTIF_FIELDS) | set(SERVER_FIELDS)
    assert set(OTHER_API_FIELDS.values()) <= known and not set(OTHER_API_FIELDS) & known


def test_a_refused_job_with_a_first_frame_leaves_no_file(server):
    # The image is written for the job before its settings are checked: a 400 removes it again.
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    body = {"prompt": PROMPT, **TINY, "steps": 0, "input_reference": {"image_url": data_url}}
    code, error, _ = server.request("POST", "/v1/videos", body)
    assert code == 400 and error["error"]["param"] == "steps", error
    assert list((server.store.root / "inputs").glob("*")) == []


@pytest.mark.parametrize(("body", "message", "param"), BAD_BODIES)
def test_invalid_settings_are_400_with_the_cli_message(server, body, message, param):
    code, error, _ = server.request("POST", "/v1/videos", body)
    assert code == 400, error
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert message in error["error"]["message"] and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param  # the field to fix, as OpenAI's errors name it
    assert server.request("GET", "/v1/videos")[1]["data"] == []  # nothing was queued


def test_a_job_that_names_no_size_gets_the_largest_the_server_allows(pipe, tmp_path):
    # The official 1280x736x121 was the default whatever --max-video said: a job that asked for no size or length on
    # a server planned for less got a 400 for a size it never asked for.
    with InProcessServer(pipe, tmp_path / "data", max_video=(50, 40, 8)) as server:
        code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "steps": 1000})
        assert code == 200, video
        assert (video["size"], video["settings"]["num_frames"]) == ("48x32", 5)  # multiples of 16, 4k+1 frames
        assert any("no size given: 48x32, the largest this server allows" in note for note in video["notes"])
        assert any("no length given: 5 frames" in note for note in video["notes"])
        code, given, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "steps": 1000, "size": "32x32"})
        assert code == 200 and given["size"] == "32x32" and not any("no size" in n for n in given["notes"])
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, "num_frames": 9})
        assert code == 400 and error["error"]["param"] == "num_frames"  # what the job asks for is still checked


def test_the_size_a_stretched_first_frame_is_told_to_use_is_one_the_server_takes(pipe, tmp_path):
    # The note offered a size of about as many pixels as the video's, more where rounding gave more: a 100x50 image
    # at this server's largest size, 64x64, was told `size 96x48`, which the server then refused (as a square image
    # at 1280x736 was told 976x976 on a server of the official size).
    image = {"image_url": "data:image/png;base64," + base64.b64encode(png(100, 50)).decode()}
    with InProcessServer(pipe, tmp_path / "data", max_video=(64, 64, 5)) as server:
        body = {"prompt": PROMPT, "steps": 1000, "input_reference": image}
        code, video, _ = server.request("POST", "/v1/videos", body)
        assert code == 200, video
        offered = [re.search(r"; size (\d+x\d+) keeps its shape", note) for note in video["notes"]]
        (size,) = [found[1] for found in offered if found]
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
        code, followed, _ = server.request("POST", "/v1/videos", {**body, "size": size})
        assert code == 200, followed  # the note followed: taken
        assert server.request("DELETE", f"/v1/videos/{followed['id']}")[0] == 200


def test_a_max_video_of_the_official_size_changes_no_job_that_names_none():
    # The official size and length fit a server planned for exactly them: no note of a default changed.
    from motif_lite.server.submission import within_max_video

    assert within_max_video({"prompt": PROMPT}, (1280, 736, 121)) == ({"prompt": PROMPT}, [])
    fields, notes = within_max_video({"prompt": PROMPT}, (1279, 736, 120))  # one under: the largest valid under it
    assert (fields["width"], fields["height"], fields["frames"]) == (1264, 736, 117) and len(notes) == 2


def test_null_is_the_default_and_the_memory_plan_caps_the_size(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data", max_video=(48, 32, 5)) as server:
        body = {"prompt": PROMPT, **LONG, "steps": None, "seed": None, "flow_shift": None}
        code, video, _ = server.request("POST", "/v1/videos", body)
        assert code == 200 and video["settings"]["steps"] == 50 and 0 <= video["settings"]["seed"] < 2**32
        # Over 1000 steps diffusers' DPM++ steps a flow shift up to about 2 only (its first timestep repeats above).
        body = {"prompt": PROMPT, **LONG, "guidance_scale": 0, "flow_shift": 1.5, "sampling_method": "dpm++2m"}
        code, given, _ = server.request("POST", "/v1/videos", body)  # given values win over the checkpoint's
        settings = given["settings"]
        assert (settings["guidance_scale"], settings["guidance_method"], settings["apg_momentum"]) == (0, None, None)
        assert (settings["flow_shift"], settings["sampling_method"]) == (1.5, "dpm++2m")
        assert server.request("DELETE", f"/v1/videos/{given['id']}")[0] == 200
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
        code, portrait, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "size": "32x48"})
        assert code == 200  # the plan covers pixels per frame (docs/server.md): the same pixels upright fit
        assert server.request("DELETE", f"/v1/videos/{portrait['id']}")[0] == 200
        # The field that is over; both over: the size, the first in the message (it named num_frames for both).
        for extra, param in (
            (dict(size="64x32"), "size"),
            (dict(num_frames=9), "num_frames"),
            (dict(size="64x32", num_frames=9), "size"),
            (dict(num_frames=None, seconds=4), "seconds"),  # the field the client sent (it named num_frames)
        ):
            code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, **extra})
            assert code == 400 and error["error"]["param"] == param
            # No memory plan here (the CPU, no --vram): the bound is the operator's --max-video alone.
            assert "than the 48x32x5 this server takes (its --max-video); ask for less" in error["error"]["message"]
        assert "48x32x97 (seconds 4 at 24 fps: 97 frames; up to 0.17 s fit) is larger" in error["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", "two"),
        ("steps", "2.5"),
        ("steps", "9" * 5000),  # more digits than Python reads
        ("seed", "random"),  # as `motif-lite run --seed random` says it
        ("seed", "z" * 5000),
        ("num_frames", "many"),
        ("num_frames", "w" * 5000),
        ("guidance_scale", "high"),
        ("fps", "x" * 5000),
        ("crf", "forty"),
        ("crf", "y" * 5000),
    ],
)
def test_a_form_value_that_is_no_number_gets_the_json_message(server, field, value):
    # docs/server.md says "the same messages": a form's steps=two got "steps must be an integer, got 'two'", without
    # the range JSON's "two" gets; every message echoes the value cut short, never 5000 characters of it.
    body, headers = multipart({"prompt": PROMPT, "size": "48x32", field: value}, {})
    form = server.request("POST", "/v1/videos", body, headers)
    sent_as_json = server.request("POST", "/v1/videos", {"prompt": PROMPT, "size": "48x32", field: value})
    assert (form[0], form[1]["error"]) == (400, sent_as_json[1]["error"])
    message = form[1]["error"]["message"]
    assert message.startswith(f"{field} must be ") and message.endswith("..." if len(value) > 60 else f"'{value}'")
    assert form[1]["error"]["param"] == field and len(message) < 300


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_list_of_prompts_is_refused_in_the_servers_words(server, field):
    # It said "(each with its own output)", Python's advice: a client of the server names no output.
    code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, field: ["a fox", "a cat"]})
    message = f"{field} must be a string, got a list: a request makes one video, so make one request per prompt"
    assert (code, error["error"]["message"], error["error"]["param"]) == (400, message, field)


def test_form_values_are_parsed_and_checked(server):
    body, headers = multipart({"prompt": PROMPT, "size": "48x32", "steps": "3", "flow_shift": ""}, {})
    code, video, _ = server.request("POST", "/v1/videos", body, headers)  # "" = not given (the SDK's None)
    assert code == 200 and video["settings"]["steps"] == 3 and video["settings"]["flow_shift"] == 15.0  # checkpoint
    assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
    first, headers = multipart({"prompt": PROMPT, "size": "48x32"}, {})
    body = first.removesuffix(b"--motiflitetestboundary--\r\n") + multipart({"size": "64x64"}, {})[0]  # size twice
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and error["error"]["message"] == "size was sent twice"
    body, headers = multipart({"prompt": PROMPT}, {"input_reference": ("x.png", b"not an image", "image/png")})
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and "input_reference is not a readable image" in error["error"]["message"]
    assert "BytesIO" not in error["error"]["message"]  # Pillow's message names its buffer, not the upload
    code, error, _ = server.request("POST", "/v1/videos", b"{not json", {"Content-Type": "application/json"})
    assert code == 400 and "not valid JSON" in error["error"]["message"]
    code, error, _ = server.request("POST", "/v1/videos", b"", {"Content-Type": "application/json"})  # curl, no -d
    assert code == 400 and error["error"]["message"].startswith("the body is empty: send a JSON object")


def test_the_checkpoints_notes_reach_the_job_as_the_requests_do(pipe, tmp_path, monkeypatch):
    # The settings' notes (here: a scheduler config's shift 1.0, ignored) are a job's notes too, not only the request's.
    import dataclasses

    configs = dataclasses.replace(pipe.sources.configs, scheduler_shift=1.0)
    monkeypatch.setattr(pipe, "sources", dataclasses.replace(pipe.sources, configs=configs))
    with InProcessServer(pipe, tmp_path / "data") as server:
        code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200 and len(video["notes"]) == 1 and video["notes"][0].startswith("ignoring shift 1.0"), video
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_a_prompt_the_text_encoder_cuts_is_a_note_when_the_job_is_submitted(server):
    # It was said only in the server's log, as the job was encoded: the client never learnt its prompt was cut.
    long = "a red fox runs " * 40 + "through deep snow at dusk"  # 626 tokens of the tiny tokenizer
    code, video, _ = server.request("POST", "/v1/videos", {**LONG, "prompt": long})
    assert code == 200 and video["status"] == "queued", video  # it runs, cut, as `motif-lite run` does
    said = "prompt is 626 tokens, over the text encoder's limit of 512: it reads up to '... red fox runs a red fox "
    assert video["notes"] == [said + "runs a' and drops the last 114; shorten the prompt to keep them"], video
    assert server.store.get(video["id"]).prompt_warnings == ["prompt is 626 tokens; dropped the last 114 (limit 512)"]
    assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
    # A negative prompt only where the guidance reads it (the official guider at scale 0: no guidance).
    for scale, notes in ((None, 1), (0, 0)):
        body = {**LONG, "prompt": PROMPT, "negative_prompt": long, "guidance_scale": scale}
        code, video, _ = server.request("POST", "/v1/videos", body)
        assert code == 200 and len(video["notes"]) == notes, video
        assert all(note.startswith("negative prompt is 626 tokens") for note in video["notes"]), video
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_a_cut_prompt_is_said_once_in_the_log_and_kept_in_the_jobs_notes(server, caplog):
    # The worker logged the job's note as it started, then the text encoder its own warning on the same cut as the
    # job was encoded: two lines of the server's log for one thing.
    import logging

    caplog.set_level(logging.WARNING, logger="motif_lite.encoders.text")
    long = "a red fox runs " * 40 + "through deep snow at dusk"  # 626 tokens of the tiny tokenizer
    video = server.client().videos.create_and_poll(prompt=long, poll_interval_ms=100, extra_body=TINY)
    assert video.status == "completed", video
    assert video.notes[0].startswith("prompt is 626 tokens, over the text encoder's limit of 512"), video.notes
    said = [line for line in server.log if ": note: " in line]
    assert said == [f"{video.id}: note: {note}" for note in video.notes]  # the negative prompt's cut too: once
    assert [r.getMessage() for r in caplog.records if "tokens; dropped the last" in r.getMessage()] == []


def test_the_worker_leaves_out_the_warnings_a_job_keeps_whatever_its_notes_say(pipe, checkpoint, tmp_path, caplog):
    # The worker read the cut prompts back from the words of the job's notes (a regex on the submission's advice);
    # the job keeps the text encoder's warnings themselves now, and the notes may say them in any words.
    import logging

    from motif_lite.encoders.text import load_tokenizer, long_prompts

    tokenizer = load_tokenizer(checkpoint)
    kept, logged = "a grey wolf walks " * 60 + "home", "a white owl flies " * 60 + "away"  # new to the pipe's cache
    cuts = {prompt: long_prompts(tokenizer, {"prompt": prompt})["prompt"] for prompt in (kept, logged)}
    warnings = {prompt: cut.warning("prompt") for prompt, cut in cuts.items()}
    caplog.set_level(logging.WARNING, logger="motif_lite.encoders.text")
    with InProcessServer(pipe, tmp_path / "data") as server:
        for prompt, said in ((kept, [warnings[kept]]), (logged, [])):  # the second one, a job that kept none
            request = GenerationRequest(prompt, "blurry", width=48, height=32, frames=5, seed=1, steps=1)
            settings = job_request_fields(request)
            notes = ["your prompt is cut"]  # in other words than the submission's
            job = server.store.add(new_job_id(), "tiny", settings, False, 10, notes=notes, prompt_warnings=said)
            server.worker.notify()
            assert server.wait_status(job.id, ("completed",))["notes"] == notes
    assert [r.getMessage() for r in caplog.records if "dropped the last" in r.getMessage()] == [warnings[logged]]


def test_a_tokenizer_note_is_said_once_though_the_load_and_a_submission_each_read_the_tokenizer(
    checkpoint, tmp_path, caplog
):
    # A tokenizer.json without the official <bos> layout: the model's load said so, then the first submission said it
    # again as it read the tokenizer to measure the prompts (`motif-lite run` says it once: tokenizer_notes_once).
    import logging
    import shutil

    from motif_lite.server.app import ServerConfig

    copy = shutil.copytree(checkpoint, tmp_path / "ckpt")
    tokenizer_json = copy / "tokenizer/tokenizer.json"
    tokenizer_json.write_text(json.dumps({**json.loads(tokenizer_json.read_text()), "post_processor": None}))
    caplog.set_level(logging.WARNING, logger="motif_lite.encoders.text")

    def load():  # in the server's thread, as `motif-lite serve` loads its model
        return load_pipeline(copy, dtype=torch.float32, device="cpu", kernels="torch"), ServerConfig(model_name="tiny")

    with InProcessServer(None, tmp_path / "data", load=load) as server:
        wait_for(lambda: server.server.loaded, 60, "the model to load")
        for _ in range(2):
            code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
            assert code == 200, video
            assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
    said = [r.getMessage() for r in caplog.records if "post_processor is null" in r.getMessage()]
    assert len(said) == 1, said


def test_a_submission_measures_its_prompts_with_a_tokenizer_of_its_own(pipe, tmp_path, monkeypatch):
    # A fast tokenizer keeps its truncation as state: a submission measuring with the worker's, as the worker encoded
    # another job, failed one of the two ("RuntimeError: Already borrowed"). Here the worker's is always busy.
    def busy(*args, **kwargs):
        raise RuntimeError("Already borrowed")

    monkeypatch.setattr(pipe.text_encoder, "tokenizer", busy)
    with InProcessServer(pipe, tmp_path / "data") as server:
        code, video, _ = server.request("POST", "/v1/videos", {**LONG, "prompt": "a red fox runs " * 40})
        assert code == 200 and video["notes"][0].startswith("prompt is 601 tokens"), video
        server.request("DELETE", f"/v1/videos/{video['id']}")


def test_a_submission_loads_its_tokenizer_once_and_goes_on_without_one(pipe, tmp_path, monkeypatch):
    # Loaded by the first job's submission (seconds), not by each. A checkpoint folder that lost its tokenizer
    # since the model loaded takes the job without the note: the encode warns as it cuts.
    import dataclasses

    from motif_lite.server import submission

    loads, load_tokenizer = [], submission.load_tokenizer

    def counted(root):
        loads.append(root)
        return load_tokenizer(root)

    monkeypatch.setattr(submission, "load_tokenizer", counted)
    long = {**LONG, "prompt": "a red fox runs " * 40}
    with InProcessServer(pipe, tmp_path / "data") as server:
        for _ in range(2):
            code, video, _ = server.request("POST", "/v1/videos", long)
            assert code == 200 and video["notes"][0].startswith("prompt is 601 tokens"), video
            server.request("DELETE", f"/v1/videos/{video['id']}")
    assert len(loads) == 1
    monkeypatch.setattr(pipe, "sources", dataclasses.replace(pipe.sources, root=tmp_path / "moved"))
    with InProcessServer(pipe, tmp_path / "data") as server:
        code, video, _ = server.request("POST", "/v1/videos", long)
        assert code == 200 and video["status"] == "queued" and video["notes"] == [], video
        server.request("DELETE", f"/v1/videos/{video['id']}")


def test_a_truncated_upload_is_an_invalid_image_when_it_is_posted(server):
    # The header alone decodes; the pixels do not. Refused as the upload it is, not later as the server's own file.
    data = png()
    cut = {"input_reference": ("x.png", data[: len(data) // 2], "image/png")}
    body, headers = multipart({"prompt": PROMPT, **TINY}, cut)
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and error["error"]["code"] == "invalid_image", error
    assert error["error"]["message"].startswith("input_reference is not a readable image")
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_an_empty_upload_is_said_to_be_empty(server):
    # It was "not a readable image (not a format Pillow reads: ...)", where motif-lite run says the file is empty.
    for files in ({"input_reference": ("x.png", b"", "image/png")}, {}):
        fields = {"prompt": PROMPT, **TINY}
        if not files:  # the JSON form of an upload: an empty base64 data URL
            fields["input_reference"] = {"image_url": "data:image/png;base64,"}
            code, error, _ = server.request("POST", "/v1/videos", fields)
        else:
            code, error, _ = server.request("POST", "/v1/videos", *multipart(fields, files))
        assert code == 400 and error["error"]["code"] == "invalid_image", error
        assert error["error"]["param"] == "input_reference"
        assert error["error"]["message"] == "input_reference is empty (0 bytes): send the image file's contents"


def test_a_second_image_is_refused_naming_input_reference(server):
    image = ("x.png", png(), "image/png")
    one, headers = multipart({"prompt": PROMPT, **TINY}, {"input_reference": image})
    two = one.removesuffix(b"--motiflitetestboundary--\r\n") + multipart({}, {"input_reference": image})[0]
    code, error, _ = server.request("POST", "/v1/videos", two, headers)
    assert code == 400 and error["error"]["param"] == "input_reference" and error["error"]["code"] == "invalid_value"
    assert (
        error["error"]["message"] == "Too many files. Maximum number of files is 1. Send one image, as input_reference"
    )
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_json_sent_as_a_form_says_to_send_its_content_type(server):
    # `curl -d '{...}'` without -H labels the body a form: it was "unknown parameter '{"prompt": ...}'".
    curl_form = {"Content-Type": "application/x-www-form-urlencoded"}
    bodies = ({"prompt": PROMPT, **TINY}, {"prompt": "salt & pepper = taste", "steps": 2})
    # as typed, and a file's pretty-printed JSON (curl --data-binary @body.json) that starts with white space
    for text in [json.dumps(body) for body in bodies] + ["\n " + json.dumps(bodies[0], indent=2)]:
        code, error, _ = server.request("POST", "/v1/videos", text.encode(), curl_form)
        assert code == 400 and error["error"]["code"] == "invalid_value", error
        assert error["error"]["message"] == (
            "the body looks like JSON: send it with Content-Type: application/json (curl: -H "
            "'Content-Type: application/json')"
        )
    code, error, _ = server.request("POST", "/v1/videos", b"prompt=a+fox&stepz=2", curl_form)  # a real form
    assert code == 400 and error["error"]["message"].startswith("unknown parameter 'stepz'")
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_json_that_fetch_sent_as_text_says_to_send_its_content_type(server):
    # fetch(url, {method: "POST", body: JSON.stringify(job)}) labels the body text/plain;charset=UTF-8: the answer
    # said "not text/plain" alone, nothing on the header the client must add.
    text = {"Content-Type": "text/plain;charset=UTF-8"}
    code, error, _ = server.request("POST", "/v1/videos", json.dumps({"prompt": PROMPT, **TINY}).encode(), text)
    assert code == 415 and error["error"]["code"] == "invalid_value", error
    assert error["error"]["message"].startswith("the body looks like JSON: send it with Content-Type: application/json")
    code, error, _ = server.request("POST", "/v1/videos", b"a red fox", text)  # no JSON: as before
    assert code == 415 and error["error"]["message"] == "send application/json or multipart/form-data, not text/plain"
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_content_type_the_server_does_not_read_is_415_unsupported_media_type(server):
    # It was a 400, where HTTP has 415 for a body in a media type the server does not take; the message still says
    # what to send instead, in the API's error shape, on every route that reads a create body.
    _, source, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
    xml = {"Content-Type": "text/xml"}
    for path in ("/v1/videos", "/v1/videos/extensions", f"/v1/videos/{source['id']}/remix"):
        code, error, headers = server.request("POST", path, b"<job><prompt>a red fox</prompt></job>", xml)
        assert code == 415 and headers["content-type"] == "application/json", (path, error)
        assert error["error"] == {"message": "send application/json or multipart/form-data, not text/xml",
                                  "type": "invalid_request_error", "param": None, "code": "invalid_value"}  # fmt: skip
    assert [video["id"] for video in server.request("GET", "/v1/videos")[1]["data"]] == [source["id"]]


def test_json_sent_without_a_content_type_is_read_as_json(server):
    # A client that sets no Content-Type at all (Python's http.client with bytes, a bare fetch) sends JSON.
    body = json.dumps({"prompt": PROMPT, "stepz": 2}).encode()
    code, error, _ = server.request("POST", "/v1/videos", body)
    assert code == 400 and error["error"]["message"].startswith("unknown parameter 'stepz'"), error
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_json_with_a_charset_or_in_capitals_is_read_as_json_not_415(server):
    # The 415 is for a media type the server does not read: a JSON type's parameters and its case (RFC 9110 8.3.1:
    # both are case-insensitive) are a client's own way of sending application/json.
    body = json.dumps({"prompt": PROMPT, "stepz": 2}).encode()
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "application/json ;charset=UTF-8"):
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 400 and error["error"]["message"].startswith("unknown parameter 'stepz'"), (content_type, error)
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_structured_syntax_json_type_is_read_as_json_not_415(server):
    # RFC 6839: a `+json` media type's body is JSON text; clients that label theirs so (a JSON:API or merge-patch
    # library) got a 415 saying to send application/json, though their body was JSON.
    body = json.dumps({"prompt": PROMPT, "stepz": 2}).encode()
    for content_type in (
        "application/merge-patch+json",
        "application/vnd.api+json; charset=utf-8",
        "Application/X+JSON",
    ):
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 400 and error["error"]["message"].startswith("unknown parameter 'stepz'"), (content_type, error)
    for content_type in ("application/+json", "text/x+json", "application/jsonx"):  # no subtype, not application's
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 415 and error["error"]["message"].endswith(f"not {content_type}"), (content_type, error)
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_video_to_extend_sent_as_a_file_and_as_a_field_is_said_twice(server):
    # The file replaced the field (a finished video's id) without a word: which video was meant is the client's.
    for key in ("extend", "video"):
        body, headers = multipart({"prompt": PROMPT, key: "video_0123"}, {key: ("clip.mp4", b"x", "video/mp4")})
        code, error, _ = server.request("POST", "/v1/videos", body, headers)
        assert code == 400 and error["error"]["message"] == f"{key} was sent twice", error
        assert error["error"]["param"] == key
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_json_key_sent_twice_is_refused_as_a_form_field_sent_twice_is(server):
    # A form's field sent twice was a 400, but JSON's parser kept the last value without a word: a client that
    # builds its body by hand (a JavaScript or Go string, a shell script) got 3 steps where it may have meant 2.
    json_headers = {"Content-Type": "application/json"}
    body = b'{"prompt": "a fox", "size": "64x64", "num_frames": 5, "steps": 2, "steps": 3}'
    code, error, _ = server.request("POST", "/v1/videos", body, json_headers)
    assert code == 400 and error["error"]["param"] == "steps" and error["error"]["code"] == "invalid_value", error
    assert error["error"]["message"].startswith("steps was sent twice"), error
    nested = b'{"prompt": "a fox", "input_reference": {"image_url": "data:,a", "image_url": "data:,b"}}'
    code, error, _ = server.request("POST", "/v1/videos", nested, json_headers)
    assert code == 400 and error["error"]["message"].startswith("'image_url' was sent twice"), error
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_json_objects_repeated_keys_are_found_looking_at_each_key_once():
    # Each key was counted in the object's list of keys, n looks per key: an object of 20k keys and one repeat (a
    # 209 KB body) took 10 s, on the event loop, so GET /health waited as long. Keys that count how often they are
    # compared or hashed show the work per key of the hook json calls for every object.
    from motif_lite.server.schema import _object_noting_repeats

    looks = 0

    class CountedKey(str):
        def __eq__(self, other):
            nonlocal looks
            looks += 1
            return str.__eq__(self, other)

        def __hash__(self):
            nonlocal looks
            looks += 1
            return str.__hash__(self)

    pairs = [(CountedKey(f"k{i}"), i) for i in range(2000)] + [(CountedKey("k7"), "again")]
    repeated: list[list[str]] = []
    assert _object_noting_repeats(repeated, pairs)["k7"] == "again" and repeated == [["k7"]]
    assert looks <= 4 * len(pairs), looks  # a set and the dict hash each key once; a count per key is 2000 times


def test_a_key_twice_in_a_forms_loras_json_is_refused_as_in_a_json_body(server):
    # A JSON body's {"loras": [{"name": "a", "name": "b"}]} was refused, but the same text in a form's loras field
    # was read by a plain json.loads, which quietly took b.
    twice = '[{"name": "a.safetensors", "name": "b.safetensors"}]'
    body, headers = multipart({"prompt": PROMPT, "loras": twice}, {})
    code, error, _ = server.request("POST", "/v1/videos", body, headers)
    assert code == 400 and error["error"]["param"] == "loras" and error["error"]["code"] == "invalid_value", error
    assert error["error"]["message"] == "'name' was sent twice in one of loras' JSON objects", error
    as_json = f'{{"prompt": "{PROMPT}", "loras": {twice}}}'.encode()
    code, error, _ = server.request("POST", "/v1/videos", as_json, {"Content-Type": "application/json"})
    assert code == 400 and error["error"]["message"].startswith("'name' was sent twice"), error
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_second_image_file_is_one_too_many(server):
    # Starlette's words alone ("Too many files. Maximum number of files is 1.") named no field.
    image = ("x.png", png(), "image/png")
    one, headers = multipart({"prompt": PROMPT}, {"input_reference": image})
    two = one.removesuffix(b"--motiflitetestboundary--\r\n") + multipart({}, {"input_reference": image})[0]
    code, error, _ = server.request("POST", "/v1/videos", two, headers)
    assert code == 400 and error["error"]["param"] == "input_reference", error
    assert error["error"]["message"].endswith(" Send one image, as input_reference"), error


# The `code`s docs/server.md lists for a 400.
CODES_400 = {"invalid_value", "unknown_parameter", "missing_required_parameter", "invalid_image"}


def test_every_400_has_a_documented_code(server):
    form, form_headers = multipart({"prompt": PROMPT, "steps": "two"}, {})
    upload, upload_headers = multipart({"prompt": PROMPT}, {"image": ("x.png", b"x", "image/png")})
    # Starlette's own refusals (their code was null): a second file, a field over 2 MiB
    image = ("x.png", png(), "image/png")
    one, _ = multipart({"prompt": PROMPT}, {"input_reference": image})
    two = one.removesuffix(b"--motiflitetestboundary--\r\n") + multipart({}, {"input_reference": image})[0]
    long_field, _ = multipart({"prompt": "x" * (2 * 2**20 + 1)}, {})
    json_headers = {"Content-Type": "application/json"}
    bad = [
        ("POST", "/v1/videos", b"{not json", json_headers),
        ("POST", "/v1/videos", b"[1]", json_headers),
        ("POST", "/v1/videos", b'{"prompt": "x"}', {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/v1/videos", form, form_headers),
        ("POST", "/v1/videos", upload, upload_headers),
        ("POST", "/v1/videos", two, upload_headers),
        ("POST", "/v1/videos", long_field, upload_headers),
        ("POST", "/v1/videos", b'{"steps": 1' + b"0" * 5000 + b"}", json_headers),  # Python's 4300-digit limit
        ("POST", "/v1/videos", b"[" * 100_000 + b"]" * 100_000, json_headers),  # deeper than Python's stack
        ("POST", "/v1/videos", {"prompt": PROMPT, "model": 3}, None),
        ("GET", f"/v1/videos/video_{'0' * 32}/content?variant=gif", None, None),
        *(("POST", "/v1/videos", body, None) for body, _, _ in BAD_BODIES),
    ]
    for method, path, body, headers in bad:
        code, error, _ = server.request(method, path, body, headers)
        assert code == 400 and error["error"]["code"] in CODES_400, (
            body if isinstance(body, dict) else body[:80],
            error,
        )


def test_a_route_without_the_v1_base_says_where_the_api_is(server):
    # A client pointed at http://host:8080 instead of .../v1 (curl $URL/videos with URL missing /v1): the 404 said
    # only "Not Found".
    code, error, _ = server.request("POST", "/videos", {"prompt": PROMPT}, None)
    assert code == 404 and error["error"]["message"] == (
        "POST /videos: Not Found; the API is under /v1: POST /v1/videos"
    )
    code, error, _ = server.request("GET", "/videos/video_123/content")
    assert error["error"]["message"].endswith("; the API is under /v1: GET /v1/videos/video_123/content")
    code, error, _ = server.request("GET", "/no/such/route")
    assert code == 404 and error["error"]["message"].startswith("GET /no/such/route: Not Found; this server speaks")


def test_a_trailing_slash_gets_the_route_without_it_and_other_tools_routes_where_the_api_is(server):
    # POST /v1/videos/ was a 307 redirect with an empty body: curl without -L printed nothing, as if it had worked.
    code, error, _ = server.request("POST", "/v1/videos/", {"prompt": PROMPT}, None)
    assert code == 404 and error["error"]["message"] == (
        "POST /v1/videos/: Not Found; without the trailing slash: POST /v1/videos"
    )
    code, error, _ = server.request("GET", "/v1/videos/video_123/")
    assert error["error"]["message"].endswith("; without the trailing slash: GET /v1/videos/video_123")
    # ComfyUI's and AUTOMATIC1111's routes: a bare "Not Found" left the user guessing which API this is.
    for path in ("/prompt", "/sdapi/v1/txt2img"):
        code, error, _ = server.request("POST", path, {"prompt": PROMPT}, None)
        assert code == 404 and error["error"]["message"] == (
            f"POST {path}: Not Found; this server speaks OpenAI's Videos API: POST /v1/videos makes a video, "
            "GET /v1/videos/ID follows it"
        )


def test_a_client_looking_for_an_openapi_schema_is_told_there_is_none_and_where_the_api_is_said(server):
    # FastAPI serves its schema at /openapi.json and its pages at /docs and /redoc: switched off here (a schema made
    # from routes that read their own bodies would name no field), a client's generator got "Not Found" and the
    # line about OpenAI's Videos API, as for any unknown path, with no word of why the schema was missing.
    for path in ("/openapi.json", "/docs", "/redoc"):
        code, error, _ = server.request("GET", path)
        assert code == 404 and error["error"]["message"] == (
            f"GET {path}: Not Found; this server serves no OpenAPI schema: its API is OpenAI's Videos API, its fields "
            "in docs/server.md"
        )


def test_unknown_ids_are_404_and_bad_queries_400(server):
    missing = "video_" + "0" * 32
    for method, path in [("GET", missing), ("DELETE", missing), ("GET", f"{missing}/content"), ("GET", "..%2F..%2Fx")]:
        code, error, _ = server.request(method, f"/v1/videos/{path}")
        assert code == 404 and error["error"]["code"] == "not_found", (method, path, error)
    for query, param in [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("limit=%C2%B2", "limit"),  # "²" is a digit to str.isdigit, not to int()
        ("limit=" + "0" * 4400 + "1", "limit"),  # past Python's 4300-digit limit for int()
        ("order=up", "order"),
        (f"after={missing}", "after"),
    ]:
        code, error, _ = server.request("GET", f"/v1/videos?{query}")
        assert code == 400 and error["error"]["param"] == param
    code, video, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
    code, _, headers = server.request("GET", f"/v1/videos/{video['id']}")
    assert code == 200 and headers["openai-poll-after-ms"] == "1000"  # milliseconds, as the SDK's poll reads it
    code, error, headers = server.request("GET", f"/v1/videos/{video['id']}/content")
    assert code == 409 and error["error"]["code"] == "video_not_ready"
    assert "x-should-retry" not in headers  # the SDK's retries wait for the video, as its message says to
    # It said "video_... is queued, not completed" alone: nothing on what to do next.
    assert f"not completed; wait until it is (GET /v1/videos/{video['id']} says" in error["error"]["message"]
    code, error, _ = server.request("GET", f"/v1/videos/{video['id']}/content?variant=sprites")
    assert code == 400 and error["error"]["param"] == "variant"
    # A query parameter a route does not take was ignored: a typo's default taken without a word (the MP4 for a
    # `varient=thumbnail`, every job for another API's `status=failed`).
    for path, param, message in [
        ("?limt=5", "limt", "unknown query parameter 'limt'; did you mean 'limit'? (known: after, limit, order)"),
        ("?status=failed&limit=5", "status", "unknown query parameter 'status' (known: after, limit, order)"),
        (f"/{video['id']}/content?varient=thumbnail", "varient",
         "unknown query parameter 'varient'; did you mean 'variant'? (known: variant)"),
    ]:  # fmt: skip
        code, error, _ = server.request("GET", f"/v1/videos{path}")
        assert code == 400 and error["error"]["code"] == "unknown_parameter", (path, error)
        assert (error["error"]["message"], error["error"]["param"]) == (message, param)
    assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_a_query_parameter_given_twice_is_refused(server):
    # `?limit=1&limit=2` (a JavaScript URLSearchParams appended to twice) took the last value without a word.
    content = f"/v1/videos/video_{'0' * 32}/content"
    for path, param in [
        ("/v1/videos?limit=1&limit=2", "limit"),
        ("/v1/videos?order=asc&order=desc", "order"),
        (f"{content}?variant=video&variant=thumbnail", "variant"),
    ]:
        code, error, _ = server.request("GET", path)
        assert code == 400 and error["error"]["code"] == "invalid_value", (path, error)
        assert error["error"]["param"] == param and error["error"]["message"] == (
            f"query parameter {param!r} was given twice"
        )
    assert server.request("GET", "/v1/videos?limit=1&order=asc")[0] == 200


def test_api_key_is_required_on_every_api_route(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data", api_key="s3cret") as server:
        routes = [("GET", "/v1/videos"), ("POST", "/v1/videos"), ("GET", "/v1/videos/x"), ("DELETE", "/v1/videos/x"),
                  ("GET", "/v1/videos/x/content"), ("GET", "/v1/models"), ("GET", "/v1/info")]  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for method, path in routes:
                code, error, _ = server.request(method, path, {"prompt": PROMPT} if method == "POST" else None, headers)
                assert code == 401 and error["error"]["code"] == "invalid_api_key", (method, path, headers)
            for path in ("/v1/videos/x", "/v1/videos/x/content", "/v1/videos"):  # HEAD as GET
                assert head_of(server, path, headers)[0] == 401, (path, headers)
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key="wrong").videos.list()
        assert [v.id for v in server.client(api_key="s3cret").videos.list()] == []
        assert server.request("GET", "/v1/videos", headers={"Authorization": "bearer s3cret"})[0] == 200  # any case
        code, page, _ = server.request("GET", "/")  # the page holds no data; it asks for the key
        assert code == 200 and b"<title>motif-lite</title>" in page


def test_no_cors_unless_asked(server, pipe, tmp_path):
    preflight = {"Origin": "http://page.test", "Access-Control-Request-Method": "POST"}
    code, _, headers = server.request("OPTIONS", "/v1/videos", headers=preflight)
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-origin" not in server.request("GET", "/v1/videos", headers=preflight)[2]
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",)) as allowing:
        code, _, headers = allowing.request("OPTIONS", "/v1/videos", headers=preflight)
        assert code == 200 and headers["access-control-allow-origin"] == "http://page.test"
        other = {**preflight, "Origin": "http://elsewhere.test"}
        assert "access-control-allow-origin" not in allowing.request("OPTIONS", "/v1/videos", headers=other)[2]


def test_a_refused_preflight_is_an_error_object_saying_which_flag_allows_it(server, pipe, tmp_path):
    # Starlette refused a preflight in plain text ("Disallowed CORS origin"), the one answer not in the API's shape,
    # and a server without --cors-origin said "Method Not Allowed": neither said that the flag exists.
    preflight = {"Origin": "http://page.test", "Access-Control-Request-Method": "POST"}
    code, error, headers = server.request("OPTIONS", "/v1/videos", headers=preflight)
    assert code == 405 and "access-control-allow-origin" not in headers, headers
    assert "--cors-origin ORIGIN" in error["error"]["message"], error
    assert "--cors-origin" not in server.request("OPTIONS", "/v1/videos")[1]["error"]["message"]  # no preflight
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",)) as allowing:
        other = {**preflight, "Origin": "http://elsewhere.test"}
        code, error, headers = allowing.request("OPTIONS", "/v1/videos", headers=other)
        assert code == 400 and headers["content-type"] == "application/json", headers
        assert "access-control-allow-origin" not in headers and headers["vary"].startswith("Origin"), headers
        assert error["error"]["code"] == "cors_not_allowed" and error["error"]["param"] is None, error
        message = error["error"]["message"]
        assert "pages of http://elsewhere.test may not call" in message and "http://page.test only" in message
        assert "--cors-origin http://elsewhere.test" in message, message
        code, error, _ = allowing.request(
            "OPTIONS", "/v1/videos", headers={**preflight, "Access-Control-Request-Method": "PUT"}
        )
        assert code == 400 and "PUT is no method of this API" in error["error"]["message"], error
        assert allowing.request("OPTIONS", "/v1/videos", headers=preflight)[0] == 200  # as before


def test_a_preflight_without_an_origin_to_a_server_with_cors_origins_is_told_it_needs_one(pipe, tmp_path):
    # Starlette's CORS passes on an OPTIONS without an Origin (curl's test of a preflight, unless told -H Origin),
    # and its 405 said the server takes no calls from other origins "unless started with --cors-origin": it was.
    asked = {"Access-Control-Request-Method": "POST"}
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",)) as allowing:
        code, error, _ = allowing.request("OPTIONS", "/v1/videos", headers=asked)
        message = error["error"]["message"]
        assert code == 405 and "a CORS preflight needs an Origin header" in message, error
        assert "unless started with" not in message, message
        assert allowing.request("OPTIONS", "/v1/videos", headers={**asked, "Origin": "http://page.test"})[0] == 200


def test_a_refused_preflight_names_the_headers_it_refused_and_no_private_network():
    # Any refusal not of the origin or the method was called a private-network one: true only while every header is
    # allowed. A server taking some headers only names the headers it refused, also to a page that asks for a
    # private network, which the origins it allows are granted.
    from starlette.datastructures import Headers

    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["http://page.test"], allow_methods=["POST"], allow_headers=["x-known"])
    preflight = {"origin": "http://page.test", "access-control-request-method": "POST"}

    def refusal(**asked: str) -> str:
        response = cors.preflight_response(Headers({**preflight, **asked}))
        assert response.status_code == 400, response.body
        return json.loads(response.body)["error"]["message"]

    message = refusal(**{"access-control-request-headers": "X-Known, X-Other"})
    assert "private network" not in message and "'x-other'" in message and "x-known" not in message, message
    message = refusal(**{"access-control-request-headers": "X-Other", "access-control-request-private-network": "true"})
    assert "private network" not in message and "'x-other'" in message, message


def test_a_refused_origin_is_told_a_cors_origin_that_pastes_and_that_serve_takes():
    # `--cors-origin http://[::1]:8080` was written bare, which zsh refuses as a pattern that matches no file; a page
    # of origin null was told `--cors-origin null`, which serve refuses (any site's sandboxed frame sends it).
    from starlette.datastructures import Headers

    from motif_lite.cli.serve_flag_values import cors_origin
    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["http://page.test"], allow_methods=["POST"])

    def flag_value(origin: str) -> str:
        response = cors.preflight_response(Headers({"origin": origin, "access-control-request-method": "POST"}))
        message = json.loads(response.body)["error"]["message"]
        (word,) = re.findall(r"--cors-origin (\S+?),? ", message)
        (value,) = shlex.split(word)
        assert not re.search(r"[][*?]", re.sub("'[^']*'", "", word)), message  # no pattern outside quotes, for zsh
        return cors_origin(value)  # taken by serve

    assert flag_value("http://[::1]:8080") == "http://[::1]:8080"
    assert flag_value("https://page.example") == "https://page.example"
    assert flag_value("null") == "*"


def test_a_preflight_asking_for_a_private_network_is_granted_to_the_origins_of_cors_origin(tmp_path):
    # Chrome's Private Network Access: a public page calling a server on this machine or the local network asks so
    # in its preflight (Access-Control-Request-Private-Network: true) and calls only if the answer allows it. The
    # server refused every such preflight with no way out (it "does not grant" it), even to an origin of
    # --cors-origin; a page of another origin is still refused, told the flag that lets it in.
    from fastapi.testclient import TestClient

    from motif_lite.server.app import ServerConfig, ServerState, create_app

    store = JobStore(tmp_path)
    try:
        app = create_app(store, ServerState(ServerConfig(model_name="tiny", cors_origins=("https://page.example",))))
        client = TestClient(app)
        asks = {"Origin": "https://page.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Private-Network": "true"}  # fmt: skip
        answer = client.options("/v1/videos", headers=asks)
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == "https://page.example"
        assert answer.headers["access-control-allow-private-network"] == "true"
        not_asked = {name: value for name, value in asks.items() if "Private" not in name}
        assert "access-control-allow-private-network" not in client.options("/v1/videos", headers=not_asked).headers
        answer = client.options("/v1/videos", headers={**asks, "Origin": "https://evil.example"})
        assert answer.status_code == 400 and "access-control-allow-private-network" not in answer.headers
        message = answer.json()["error"]["message"]
        assert "--cors-origin https://evil.example" in message and "private network" not in message, message
    finally:
        store.close()


def test_the_log_says_who_queued_each_job_also_behind_a_proxy(server):
    # The log said when each job started and how long it waited and ran, never who asked for it: on a server that a
    # team shares, the proxy's access log has each request but not the job it made. Behind a proxy on this machine
    # the client is the one its X-Forwarded-For names (uvicorn takes it from this machine only).
    asked = {"prompt": PROMPT, **TINY}
    _, direct, _ = server.request("POST", "/v1/videos", asked)
    _, proxied, _ = server.request("POST", "/v1/videos", asked, {"X-Forwarded-For": "203.0.113.7"})
    remix_of = server.wait_status(direct["id"], ("completed",))
    _, remixed, _ = server.request("POST", f"/v1/videos/{remix_of['id']}/remix", {"prompt": "a grey wolf"})
    queued = [line for line in server.log if ": queued by " in line]
    assert queued == [f"{direct['id']}: queued by 127.0.0.1", f"{proxied['id']}: queued by 203.0.113.7",
                      f"{remixed['id']}: queued by 127.0.0.1"]  # fmt: skip
    said = [line for line in server.log if line.startswith(direct["id"])]
    assert said[0] == f"{direct['id']}: queued by 127.0.0.1" and said[1].startswith(f"{direct['id']}: started")
    server.wait_status(remixed["id"], ("completed",))


def test_a_jobs_queued_by_line_comes_before_its_started_line_at_an_idle_look_too(pipe, tmp_path, monkeypatch):
    # The worker also looks at the queue every IDLE_WAIT_SECONDS without being woken: one look between the job's
    # store and its `queued by` line started it first (test_the_log_says_who_queued_each_job_also_behind_a_proxy
    # could fail so under load). Here the looks come every 10 ms and the store pauses once it has added the job.
    monkeypatch.setattr("motif_lite.server.worker.IDLE_WAIT_SECONDS", 0.01)
    with InProcessServer(pipe, tmp_path / "data") as server:
        add = server.store.add

        def add_then_pause(*args, **kwargs):
            job = add(*args, **kwargs)
            time.sleep(0.5)  # many idle looks of the worker before `queued by` is logged
            return job

        monkeypatch.setattr(server.store, "add", add_then_pause)
        _, job, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})
        server.wait_status(job["id"], ("completed",))
    said = [line for line in server.log if line.startswith(job["id"])]
    assert said[0] == f"{job['id']}: queued by 127.0.0.1" and said[1].startswith(f"{job['id']}: started"), said


def test_cors_lets_an_sdk_call_from_another_origin_and_read_its_headers(pipe, tmp_path):
    # OpenAI's SDKs send their own headers (X-Stainless-*, and OpenAI-Organization where set) with every call: a
    # preflight naming them got 400 "Disallowed CORS headers", so a page using the SDK could call nothing. And the
    # poll interval and retry hints were headers a page's script could not read.
    from openai import OpenAI

    sdk_headers = [name.lower() for name in OpenAI(api_key="k", base_url="http://x/v1").default_headers]
    asked = ", ".join([*sdk_headers, "authorization", "openai-organization", "x-stainless-retry-count"])
    preflight = {"Origin": "http://page.test", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": asked}  # fmt: skip
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",), api_key="k") as server:
        code, _, headers = server.request("OPTIONS", "/v1/videos", headers=preflight)
        assert code == 200 and headers["access-control-allow-origin"] == "http://page.test"
        allowed = {name.strip() for name in headers["access-control-allow-headers"].lower().split(",")}
        assert {name.strip() for name in asked.split(",")} <= allowed
        job = server.client(api_key="k").videos.create(prompt=PROMPT, size="64x64", seconds="1")
        auth = {"Origin": "http://page.test", "Authorization": "Bearer k"}
        code, _, headers = server.request("GET", f"/v1/videos/{job.id}", headers=auth)
        exposed = {name.strip() for name in headers["access-control-expose-headers"].lower().split(",")}
        assert code == 200 and {"openai-poll-after-ms", "retry-after", "x-should-retry"} <= exposed


def test_a_page_of_another_origin_reads_a_ranged_downloads_size_name_and_etag(pipe, tmp_path):
    # A page that fetches a video in parts (a progress bar, a resumed download) reads the file's size from a 206's
    # Content-Range, its name from Content-Disposition and resumes with If-Range and its ETag: the browser showed
    # its script none of them, only the SDKs' poll and retry headers were exposed.
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",)) as server:
        video = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})[1]
        server.wait_status(video["id"], ("completed",))
        ranged = {"Origin": "http://page.test", "Range": "bytes=0-9"}
        code, data, headers = server.request("GET", f"/v1/videos/{video['id']}/content", headers=ranged)
        assert code == 206 and len(data) == 10 and headers["access-control-allow-origin"] == "http://page.test"
        exposed = {name.strip() for name in headers["access-control-expose-headers"].lower().split(",")}
        read = {"content-range", "content-disposition", "etag", "accept-ranges"}
        assert read <= exposed and read <= {name.lower() for name in headers}, headers


def test_a_bugs_500_reaches_a_page_of_another_origin_in_the_apis_shape(pipe, tmp_path, monkeypatch):
    # Starlette answered an exception no handler took from outside every middleware: the 500 had no CORS headers,
    # so a page of another origin saw a network error ("Failed to fetch") where a client in the same origin read
    # the message. The store failing here stands for any bug in a route.
    with InProcessServer(pipe, tmp_path / "cors", cors_origins=("http://page.test",)) as server:

        def page(*args):
            raise RuntimeError("a bug")

        monkeypatch.setattr(server.store, "page", page)
        code, error, headers = server.request("GET", "/v1/videos", headers={"Origin": "http://page.test"})
        assert code == 500 and headers["access-control-allow-origin"] == "http://page.test", headers
        assert error["error"] == {"message": "internal error: RuntimeError: a bug", "type": "server_error",
                                  "param": None, "code": "server_error"}  # fmt: skip
        assert server.request("GET", "/v1/videos")[0] == 500  # and without an origin, as before


def test_oversized_bodies_and_images_are_413(pipe, tmp_path):
    limits = dict(max_upload_bytes=64 * 1024, max_image_pixels=200 * 200)
    with InProcessServer(pipe, tmp_path / "data", **limits) as server:
        body_limit = 64 * 1024 * 4 // 3 + 2**20
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": "x" * body_limit})
        assert code == 413 and error["error"]["code"] == "request_too_large"
        assert error["error"]["message"] == (  # it named only the byte count (the flag's MiB as 4/3 + 1 MiB)
            f"the request is larger than this server's limit of {body_limit:,} bytes (--max-upload-mb 0.0625: "
            "first-frame images up to 0.0625 MiB, as a file or in JSON as base64)"
        )
        big = np.random.default_rng(0).integers(0, 256, 100 * 1024, dtype=np.uint8).tobytes()
        body, headers = multipart({"prompt": PROMPT}, {"input_reference": ("big.png", big, "image/png")})
        code, error, _ = server.request("POST", "/v1/videos", body, headers)
        assert code == 413 and error["error"]["message"] == (
            "input_reference is 102,400 bytes, larger than this server's limit (--max-upload-mb 0.0625: first-frame "
            "images up to 0.0625 MiB)"
        )
        body, headers = multipart(
            {"prompt": PROMPT}, {"input_reference": ("wide.png", png(400, 120, flat=True), "image/png")}
        )
        code, error, _ = server.request("POST", "/v1/videos", body, headers)
        assert code == 413 and "is 400x120; the limit is 40,000 pixels" in error["error"]["message"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:  # a declared 1 GB: refused
            raw.sendall(b"POST /v1/videos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n")
            assert raw.recv(4096).startswith(b"HTTP/1.1 413")
        assert server.request("GET", "/v1/videos")[1]["data"] == []


def body_limit_status(content_type: str, chunks: list[bytes], declared: bool) -> tuple[int, str, int]:
    """(status, error message or "", chunks left unread) of a request through `BodyLimit` of 10 bytes (100 for a
    form) to an app that reads the whole body; its body in `chunks`, with its Content-Length where `declared`."""
    import asyncio

    from motif_lite.server.body_limit import BodyLimit

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in
                enumerate(chunks)]  # fmt: skip
    headers = [(b"content-type", content_type.encode())]
    headers += [(b"content-length", str(sum(map(len, chunks))).encode())] if declared else []
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    limits = BodyLimit(app, max_bytes=10, max_upload_bytes=6, max_form_bytes=100, max_video_upload_bytes=90)
    asyncio.run(limits({"type": "http", "headers": headers}, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)["error"]["message"] if body else "", len(messages)


def test_the_body_limit_is_the_forms_for_a_form_and_counts_a_body_without_its_length():
    form = "multipart/form-data; boundary=x"
    for declared in (True, False):  # by its Content-Length, or counted as it arrives (chunked)
        assert body_limit_status("application/json", [b"x" * 5, b"x" * 5], declared)[0] == 200
        assert body_limit_status("application/json", [b"x" * 5, b"x" * 6], declared)[0] == 413
        assert body_limit_status(form, [b"x" * 50, b"x" * 50], declared)[0] == 200  # a video to extend, say
        code, message, _ = body_limit_status(form, [b"x" * 50, b"x" * 51], declared)
        assert code == 413 and message == (
            "the request is larger than this server's limit of 100 bytes (--max-upload-mb 5.72205e-06: first-frame "
            "images up to 5.72205e-06 MiB; --max-video-upload-mb 8.58307e-05: videos to extend up to 8.58307e-05 MiB)"
        )
        # A body up to 4 times the limit is read to its end: the client sees the 413, not a connection reset.
        assert body_limit_status("application/json", [b"x" * 8] * 5, declared)[::2] == (413, 0)


def test_a_form_content_type_in_capitals_gets_the_forms_limit():
    # Media types are case-insensitive (RFC 9110): a client sending Multipart/Form-Data uploads a form all the same.
    for declared in (True, False):
        assert body_limit_status("Multipart/Form-Data; boundary=x", [b"x" * 50, b"x" * 50], declared)[0] == 200


def test_a_body_over_the_limit_after_the_response_started_is_not_answered_twice():
    # An app that answers first and reads its body after: the 413 cannot be sent any more, so the error goes on.
    import asyncio

    from motif_lite.server.body_limit import BodyLimit, BodyTooLarge

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while (await receive()).get("more_body"):
            pass

    messages = [{"type": "http.request", "body": b"x" * 8, "more_body": True} for _ in range(3)]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    limits = BodyLimit(app, max_bytes=10, max_upload_bytes=6, max_form_bytes=100, max_video_upload_bytes=90)
    with pytest.raises(BodyTooLarge):
        asyncio.run(limits({"type": "http", "headers": []}, receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_a_large_upload_is_read_without_pillows_bomb_warning_and_one_pillow_refuses_is_413(monkeypatch):
    # Pillow's limits scaled down (89 and 179 megapixels by default): a large photo logged a "decompression bomb DOS
    # attack" warning, and a larger one got 400 with Pillow's words alone.
    import warnings

    from motif_lite.server.schema import ApiError, check_image

    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings(record=True) as caught:  # recorded: a filter set inside would beat "error"
        warnings.simplefilter("always")
        check_image(png(12, 12), max_bytes=2**20, max_pixels=40_000)  # 144 pixels: over the warning's limit of 100
        with pytest.raises(ApiError) as refused:
            check_image(png(16, 16), max_bytes=2**20, max_pixels=40_000)  # 256: over Pillow's limit of 200
    assert not caught, [str(w.message) for w in caught]
    error = refused.value
    assert (error.status, error.param, error.code) == (413, "input_reference", "image_too_large")
    assert error.message.startswith("input_reference has more than ") and "more than Pillow reads" in error.message
    assert "save a smaller copy first" in error.message and "this server's limit: 40,000 pixels" in error.message


def test_an_uploaded_video_is_named_with_how_to_take_a_frame(tmp_path):
    # It was "not a format Pillow reads: PNG, JPEG, WebP, ...": a client chaining clips sent the last clip itself.
    from motif_lite.io.video import write_video
    from motif_lite.server.schema import ApiError, check_image

    clip = write_video(np.zeros((5, 32, 48, 3), np.uint8), tmp_path / "clip.mp4", fps=24)
    with pytest.raises(ApiError) as refused:
        check_image(clip.read_bytes(), max_bytes=2**20, max_pixels=40_000)
    error = refused.value
    assert (error.status, error.param, error.code) == (400, "input_reference", "invalid_image")
    assert "(it is a video, not an image" in error.message and "ffmpeg -sseof -1 -i FILE" in error.message


def test_an_uploaded_phone_photo_is_named_from_its_brand(tmp_path):
    # The brand sits at bytes 8-11: the upload's first bytes, not only its first few, are what is looked at.
    from motif_lite.server.schema import ApiError, check_image

    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(ApiError, match=r"\(it is a HEIF \(HEIC\) photo"):
        check_image(heic, max_bytes=2**20, max_pixels=40_000)


def test_full_queue_is_429(pipe, tmp_path):
    with InProcessServer(pipe, tmp_path / "data", max_queue=2) as server:
        ids = [server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]["id"] for _ in range(2)]
        code, error, headers = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 429 and error["error"]["code"] == "queue_full" and headers["retry-after"] == "30"
        with pytest.raises(openai.RateLimitError):
            server.client().videos.create(prompt=PROMPT, extra_body=LONG)
        assert server.request("DELETE", f"/v1/videos/{ids[1]}")[0] == 200  # a free place again
        code, third, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 200
        for video_id in (ids[0], third["id"]):
            assert server.request("DELETE", f"/v1/videos/{video_id}")[0] == 200


def test_a_queue_of_one_says_so_in_words(pipe, tmp_path):
    # `--max-queue 1` answered "the queue is full (1 jobs queued or running)".
    with InProcessServer(pipe, tmp_path / "data", max_queue=1) as server:
        running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 429 and error["error"]["message"] == (
            "the queue is full (1 job queued or running); try again later"
        ), error
        assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200


def test_pagination_with_cursor_limit_and_order(server):
    client = server.client()
    ids = [client.videos.create(prompt=f"{PROMPT} {i}", extra_body=LONG).id for i in range(5)]
    assert [v.id for v in client.videos.list(limit=2, order="asc")] == ids  # the SDK follows `after` itself
    page = client.videos.list(limit=2)  # newest first by default
    assert [v.id for v in page.data] == ids[:2:-1][:2] and page.has_more and page.last_id == ids[3]
    code, rest, _ = server.request("GET", f"/v1/videos?after={ids[3]}&limit=10")
    assert [v["id"] for v in rest["data"]] == [ids[2], ids[1], ids[0]] and rest["has_more"] is False
    code, last, _ = server.request("GET", f"/v1/videos?after={ids[2]}&limit=2")  # exactly the 2 that are left
    assert [v["id"] for v in last["data"]] == [ids[1], ids[0]] and last["has_more"] is False
    for video_id in ids:
        client.videos.delete(video_id)
    assert client.videos.list().data == []


def test_an_sdk_client_deletes_every_video_it_lists_page_by_page(server):
    # The SDK asks each next page `after` the last video of the one before: a script deleting what it lists got a
    # 400 "after: no video ..." at its second page, the video it names deleted, and the rest stayed.
    client = server.client()
    ids = [client.videos.create(prompt=f"{PROMPT} {i}", extra_body=LONG).id for i in range(5)]
    for video in client.videos.list(limit=2):
        client.videos.delete(video.id)
    assert client.videos.list().data == []
    assert server.request("GET", f"/v1/videos?after={ids[0]}")[1]["data"] == []  # the oldest's place: none after
    never = "video_" + "0" * 32
    code, error, _ = server.request("GET", f"/v1/videos?after={never}")
    assert code == 400 and error["error"]["param"] == "after"  # a video this server never made is still refused


def test_delete_stops_a_running_job_between_steps_and_a_queued_one_before_it_starts(server, caplog):
    running = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    queued = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    wait_for(lambda: server.request("GET", f"/v1/videos/{running['id']}")[1]["progress"] > 5, 120, "denoising")
    assert server.request("DELETE", f"/v1/videos/{queued['id']}")[0] == 200
    assert server.request("DELETE", f"/v1/videos/{running['id']}")[0] == 200
    assert server.request("GET", f"/v1/videos/{running['id']}")[0] == 404
    wait_for(lambda: f"{running['id']}: deleted, stopped" in server.log, 60, "the worker to stop the job")
    assert_no_cli_advice(caplog)  # its state, which the server removes, was offered to `motif-lite run --resume`
    assert [line for line in server.log if queued["id"] in line] == [f"{queued['id']}: queued by 127.0.0.1"]  # only
    video = server.client().videos.create_and_poll(prompt=PROMPT, poll_interval_ms=100, extra_body=TINY)
    assert video.status == "completed"  # the worker is free again
    assert sorted(p.name for p in (server.store.root / "videos").iterdir()) == [f"{video.id}.mp4", f"{video.id}.webp"]


def test_orderly_stop_queues_the_running_job_again(pipe, tmp_path):
    data = tmp_path / "data"
    with InProcessServer(pipe, data) as server:
        video = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
        server.wait_status(video["id"], ("in_progress",))
    store = JobStore(data)
    try:
        job = store.get(video["id"])
        assert job.status == QUEUED and job.started_at is None
        # Stopped after a step, it keeps its state and the progress it had reached; before one, it starts over.
        assert (job.progress > 0) == store.state_path(job.id).exists(), job.progress
        assert list(store.videos.iterdir()) == []  # the partial video was removed
    finally:
        store.close()
    with InProcessServer(pipe, data) as server:
        server.wait_status(video["id"], ("in_progress",))  # picked up again after the restart
        assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200


def test_a_job_queued_before_a_restart_that_no_longer_fits_fails_as_it_starts(pipe, tmp_path):
    # A job was checked against --max-video only at submission: one queued before a restart with a smaller
    # --max-video ran at its old size, past the new server's memory plan (or for hours on its CPU).
    data = tmp_path / "data"
    with InProcessServer(pipe, data) as server:
        large = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG, "num_frames": 9})[1]
        small = server.request("POST", "/v1/videos", {"prompt": PROMPT, **TINY})[1]
        server.wait_status(large["id"], ("in_progress",))
    with InProcessServer(pipe, data, max_video=(48, 32, 5)) as server:
        failed = server.wait_status(large["id"], ("failed",))
        assert failed["error"] == {
            "code": "invalid_request",
            "message": "this job no longer fits the server, which changed since it was queued: 48x32x9 is larger "
            "than the 48x32x5 this server takes (its --max-video); ask for less, or restart it with a larger "
            "--max-video",
        }
        assert server.wait_status(small["id"], ("completed",))["size"] == "48x32"  # one that fits runs
        assert any(line.startswith(f"{large['id']}: failed") and "48x32x5" in line for line in server.log)
        assert not any(f"{large['id']}: goes on from" in line for line in server.log)  # its saved state unused


def test_previews_while_denoising(server):
    # 1000 steps (LONG): 40 took 0.4 s on an idle machine, and the preview, kept only while the job denoises, was gone
    # before a look every 0.2 s saw it
    video = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})[1]
    code, error, _ = server.request("GET", f"/v1/videos/{video['id']}/content?variant=preview")
    assert code == 404 and error["error"]["code"] == "preview_not_ready"  # queued: nothing to show yet

    def preview():
        code, data, headers = server.request("GET", f"/v1/videos/{video['id']}/content?variant=preview")
        return code == 200 and (data, headers)

    data, headers = wait_for(preview, 120, "a preview", interval=0.2)  # after 250 of the 1000 steps
    assert headers["content-type"] == "image/webp" and headers["cache-control"] == "no-store"
    image = PIL.Image.open(io.BytesIO(data))
    assert (image.size, image.n_frames) == ((12, 8), 2)  # 2x the 6x4 latents, one frame per latent frame
    image.load()
    latent_frame = 1000 * TEMPORAL_FACTOR / GenerationRequest(PROMPT).fps  # ms of video per latent frame
    assert abs(image.info["duration"] - latent_frame) <= 1
    assert server.request("DELETE", f"/v1/videos/{video['id']}")[0] == 200
    wait_for(lambda: f"{video['id']}: deleted, stopped" in server.log, 60, "the worker to stop the job")
    assert list((server.store.root / "videos").iterdir()) == []


def test_the_preview_of_a_finished_job_is_said_to_be_over_not_yet_to_come(server):
    # It said "no preview of ... (yet)" for a completed job too, which would keep a client polling for one.
    video = server.client().videos.create_and_poll(prompt=PROMPT, poll_interval_ms=100, extra_body=TINY)
    code, error, _ = server.request("GET", f"/v1/videos/{video.id}/content?variant=preview")
    assert code == 404 and error["error"]["code"] == "preview_not_ready"
    assert error["error"]["message"] == (
        f"no preview of {video.id}: it is completed, and a preview exists only while a job is denoising (its "
        "video: variant=video)"
    )


def test_the_workers_preview_file_opens_at_the_first_preview_and_is_closed_once(tmp_path, monkeypatch):
    from motif_lite.server import worker

    opened = []

    class Recorder:
        def __init__(self, path, fps):
            self.previews, self.closed = [], 0
            opened.append(self)

        def __call__(self, done, steps, frames):
            self.previews.append(done)

        def close(self):
            self.closed += 1

    monkeypatch.setattr(worker, "PreviewFile", Recorder)
    none = worker.FirstPreviewOpens(tmp_path / "p.webp", 4.0)
    none.close()
    assert opened == []  # a job without previews opens no file (and gets no warning that it wrote nothing)
    two = worker.FirstPreviewOpens(tmp_path / "p.webp", 4.0)
    two(1, 4, np.zeros(1))
    two(2, 4, np.zeros(1))
    two.close()
    assert len(opened) == 1 and opened[0].previews == [1, 2] and opened[0].closed == 1


def test_a_failed_thumbnail_leaves_no_partial_file(tmp_path, monkeypatch):
    import imageio_ffmpeg

    from motif_lite.server.worker import write_thumbnail

    video, thumbnail = tmp_path / "v.mp4", tmp_path / "v.webp"
    writer = imageio_ffmpeg.write_frames(str(video), (48, 32), fps=8, macro_block_size=16)
    writer.send(None)
    writer.send(np.full((32, 48, 3), 200, np.uint8).tobytes())
    writer.close()
    write_thumbnail(video, thumbnail)
    assert PIL.Image.open(thumbnail).size == (48, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4", "v.webp"]
    thumbnail.unlink()

    def half_written(image, path, *args, **kwargs):
        path.write_bytes(b"RIFF")
        raise OSError("disk full")

    monkeypatch.setattr(PIL.Image.Image, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_thumbnail(video, thumbnail)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_thumbnail_leaves_no_pipe_to_the_garbage_collector(tmp_path):
    # imageio-ffmpeg's reader, stopped after the first frame of a video whose ffmpeg had already finished, left its
    # pipes to be collected: a ResourceWarning for every finished job (`python -W error::ResourceWarning`).
    import gc
    import warnings

    import imageio_ffmpeg

    from motif_lite.server.worker import write_thumbnail

    video, thumbnail = tmp_path / "v.mp4", tmp_path / "v.webp"
    writer = imageio_ffmpeg.write_frames(str(video), (48, 32), fps=8, macro_block_size=16)
    writer.send(None)
    for shade in (200, 100):
        writer.send(np.full((32, 48, 3), shade, np.uint8).tobytes())
    writer.close()
    gc.collect()  # garbage of earlier tests (a client's socket) is not this test's: collected before it looks
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        write_thumbnail(video, thumbnail)
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []
    first = np.asarray(PIL.Image.open(thumbnail).convert("RGB"))
    assert first.shape == (32, 48, 3) and abs(int(first.mean()) - 200) <= 3  # the first frame, not the second
    thumbnail.unlink()
    not_a_video = tmp_path / "not.mp4"
    not_a_video.write_bytes(b"not a video")
    with pytest.raises(RuntimeError, match="ffmpeg could not read the first frame of .*not.mp4"):
        write_thumbnail(not_a_video, thumbnail)
    assert not thumbnail.exists()


def test_a_job_that_cannot_run_fails_and_the_worker_goes_on(server):
    # Settings a future version might store: this job fails, the next one runs.
    settings = {**job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=1)), "bogus": 1}
    bad = server.store.add(new_job_id(), "tiny", settings, False, max_active=10)
    server.worker.notify()
    good = server.client().videos.create_and_poll(prompt=PROMPT, poll_interval_ms=100, extra_body=TINY)
    failed = server.wait_status(bad.id, ("failed",))
    assert failed["error"]["code"] == "generation_failed" and "bogus" in failed["error"]["message"]
    assert good.status == "completed"


def served_until_it_stops(pipe, store: JobStore) -> tuple[list[str], list[str]]:
    """Serve `store`'s queue with `pipe` on a thread until the server stops by itself (30 s at most, else it is
    stopped) -> (the MotifLiteError it stopped with, if any; its log lines)."""
    import threading

    from motif_lite.errors import MotifLiteError
    from motif_lite.server.app import ServerConfig
    from motif_lite.server.runner import VideoServer, bind

    log, config = [], ServerConfig(model_name="tiny")
    server = VideoServer(store, config, log.append)
    sock, stopped = bind("127.0.0.1", 0), []

    def serve() -> None:
        try:
            server.serve(sock, lambda: (pipe, config))
        except MotifLiteError as exc:
            stopped.append(str(exc))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():  # it kept serving: stop it before failing
        server.stop()
        thread.join(30)
    sock.close()
    return stopped, log


def test_a_data_folder_that_cannot_be_written_stops_the_server_saying_why(pipe, tmp_path, monkeypatch):
    # With the disk full the worker thread died ("Exception in thread motif-lite-worker: database or disk is full")
    # while the API went on queuing jobs that would never run, the running one at its last percentage for good.
    import sqlite3

    store = JobStore(tmp_path / "data")

    def disk_full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "set_progress", disk_full)  # the job's progress, then its failure, cannot be recorded
    monkeypatch.setattr(store, "finish", disk_full)
    store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    stopped, log = served_until_it_stops(pipe, store)
    assert stopped and "database or disk is full" in stopped[0] and str(store.root) in stopped[0]
    assert "error: the worker stopped: OperationalError: database or disk is full" in log


def a_failed_video(server: InProcessServer, pipe, monkeypatch) -> Any:
    """A job whose video could not be written: failed, with no content."""
    from motif_lite.errors import MotifLiteError

    def fails(*args, **kwargs):
        raise MotifLiteError("cannot write the video")

    monkeypatch.setattr(pipe.vae, "decode_frames", fails)
    video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
    server.wait_status(video.id, ("failed",))
    return video


def test_the_content_of_a_failed_job_says_it_has_none_and_where_the_error_is(server, pipe, monkeypatch):
    # It said "video_... is failed, not completed", as if waiting would bring the video.
    video = a_failed_video(server, pipe, monkeypatch)
    code, error, _ = server.request("GET", f"/v1/videos/{video.id}/content")
    assert code == 409 and error["error"]["code"] == "video_not_ready"
    said = f"video {video.id} failed: it has no video (GET /v1/videos/{video.id}: its error says why)"
    assert error["error"]["message"] == said


def raised_with_the_sdks_retries(server: InProcessServer, call: Callable[[Any], Any]) -> openai.APIStatusError:
    """What `call(client)` raised from a client with the SDK's own retries (two, as users have them)."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=30)
    with pytest.raises(openai.APIStatusError) as raised:
        call(client)
    return raised.value


def test_openais_spritesheet_variant_is_said_to_be_one_this_server_does_not_make(server):
    # It got the 400 of a typo: "variant must be one of video, thumbnail, preview", though the SDK offers it.
    video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
    server.wait_status(video.id, ("completed",))
    with pytest.raises(openai.BadRequestError) as raised:
        server.client().videos.download_content(video.id, variant="spritesheet")
    error = raised.value.body
    assert (error["code"], error["param"]) == ("unsupported", "variant")
    assert error["message"] == "this server makes no sprite sheets (the thumbnail variant is the first frame)"


def test_the_preview_of_a_failed_job_is_said_to_be_over_not_yet_to_come(server, pipe, monkeypatch):
    # A failed job will have no preview either: "yet" would keep a client polling for one.
    video = a_failed_video(server, pipe, monkeypatch)
    code, error, _ = server.request("GET", f"/v1/videos/{video.id}/content?variant=preview")
    assert code == 404 and error["error"]["code"] == "preview_not_ready"
    assert error["error"]["message"] == (
        f"no preview of {video.id}: it failed, and a preview exists only while a job is denoising"
    )


def test_an_sdk_client_retrieves_the_model_it_lists(server):
    # `client.models.retrieve` (GET /v1/models/{id}) was a 404 for the served model too, saying "this server speaks
    # OpenAI's Videos API", though the route is one of that API's: a client checking its model found none.
    client = server.client()
    [listed] = client.models.list().data
    assert client.models.retrieve(listed.id) == listed
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("sora-2")
    error = raised.value.body
    assert (error["code"], error["param"]) == ("not_found", "model")
    assert error["message"] == f"no model 'sora-2' on this server: it serves {listed.id!r} alone"


def test_an_sdk_client_does_not_retry_the_content_of_a_failed_job(server, pipe, monkeypatch):
    # The SDK retried the 409 twice ("Retrying due to status code 409"): for a failed job no wait brings a video.
    video = a_failed_video(server, pipe, monkeypatch)
    code, _, headers = server.request("GET", f"/v1/videos/{video.id}/content")
    assert code == 409 and headers["x-should-retry"] == "false"
    looked_up: list[str] = []  # one per request for the content: the route looks its job up once
    get = server.store.get
    monkeypatch.setattr(server.store, "get", lambda job_id: looked_up.append(job_id) or get(job_id))
    error = raised_with_the_sdks_retries(server, lambda client: client.videos.download_content(video.id))
    assert isinstance(error, openai.ConflictError) and looked_up == [video.id]


def test_a_failed_jobs_error_speaks_to_the_client_and_its_log_line_to_the_operator(server, pipe, monkeypatch):
    # error.message was the CLI's text: "... make the video from them without sampling again: motif-lite decode
    # /srv/data/states/video_....latents.safetensors", a path on the server and a command the client cannot run.
    from motif_lite.errors import MotifLiteError

    def disk_full(*args, **kwargs):
        raise MotifLiteError("cannot write the video: no space left on the disk")

    monkeypatch.setattr(pipe.vae, "decode_frames", disk_full)
    video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
    failed = server.wait_status(video.id, ("failed",))
    state = server.store.state_path(video.id)
    assert state.is_file()  # the denoised latents, kept for the operator
    assert failed["error"] == {
        "code": "invalid_request",
        "message": "cannot write the video: no space left on the disk; submit the job again, or ask the server's "
        "operator: what this job had done is kept on the server until the job is deleted or the server restarts, and "
        "the server's log says how to finish the video from it",
    }

    def failed_line() -> str | None:  # logged just after the job is marked failed, with how long it waited and ran
        return next((line for line in server.log if line.startswith(f"{video.id}: failed (")), None)

    logged = wait_for(failed_line, 30, "the failure's log line")
    assert f"motif-lite decode {state}" in logged  # the whole text, for the operator


def test_a_job_out_of_memory_says_what_the_client_and_the_operator_can_do(pipe, tmp_path, no_network, monkeypatch):
    # It said "(try a smaller size or fewer frames)": nothing of the server's memory plan, nor that its operator can
    # give serve a --vram that plans for less, as `motif-lite run` says with the figures of its plan.
    import re

    from motif_lite.cli.prepare import planned_run, sources_before_download

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # --vram as given, on any machine
    args = cli.build_parser().parse_args(["serve", "--gguf", "Q4_K_M", "--vram", "8", "--device", "cuda"])
    args.weights = {}
    largest = GenerationRequest("-", width=1280, height=736, frames=121)  # what serve plans for by default
    planned = planned_run(args, largest, sources_before_download(args), torch.bfloat16, torch.device("cuda"))
    plan = planned.plan()
    with InProcessServer(OutOfMemoryInAJob(pipe), tmp_path / "data", planned=planned, plan=plan) as server:
        video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
        failed = server.wait_status(video.id, ("failed",))
    code, message = failed["error"]["code"], failed["error"]["message"]
    assert code == "out_of_memory" and message.startswith(
        "out of device memory: CUDA out of memory. Tried to allocate 2.00 GiB (simulated). Ask for a smaller size or "
        "fewer num_frames. For the server's operator: the server's memory plan for videos up to 1280x736x121 ("
    ), message
    assert (
        f"({plan.ladder_index + 1} of {plan.ladder_size}) had a budget of 8.00 GiB (--vram) for an est. peak of"
        in message
    )
    lower, number = re.search(r"Restart the server with --vram (\d+\.\d\d) \(just under that peak\), which gives the "
                              r"next plan, (\d+): ", message).groups()  # fmt: skip
    assert message.endswith("; or with a smaller --max-video")
    assert planned.plan(float(lower)).ladder_index + 1 == int(number) > 1  # the figure plans as it says


def test_a_job_out_of_memory_without_a_plan_says_what_the_client_can_do(pipe, tmp_path):
    with InProcessServer(OutOfMemoryInAJob(pipe), tmp_path / "data") as server:  # on the CPU: no memory plan
        video = server.client().videos.create(prompt=PROMPT, extra_body=TINY)
        failed = server.wait_status(video.id, ("failed",))
    assert failed["error"] == {
        "code": "out_of_memory",
        "message": "out of device memory: CUDA out of memory. Tried to allocate 2.00 GiB (simulated). Ask for a "
        "smaller size or fewer num_frames",
    }


def assert_a_second_store_is_refused(folder: Path) -> None:
    first = JobStore(folder)
    try:
        with pytest.raises(DataFolderBusy, match="another motif-lite serve .*is using"):
            JobStore(folder)
    finally:
        first.close()


def test_one_server_per_data_folder(tmp_path):
    assert_a_second_store_is_refused(tmp_path)
    JobStore(tmp_path).close()  # free again


def test_one_server_per_data_folder_with_windows_locks(tmp_path, monkeypatch):
    """Where there is no fcntl (Windows), the folder is locked with msvcrt's non-blocking byte lock (a stand-in
    here that refuses a second lock on the same file, as Windows does)."""
    held, calls = set(), []

    def locking(fd: int, mode: int, nbytes: int) -> None:
        calls.append((mode, nbytes))
        file = os.fstat(fd)
        if (file.st_dev, file.st_ino) in held:
            raise PermissionError(13, "Permission denied")
        held.add((file.st_dev, file.st_ino))

    monkeypatch.setattr(jobs, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(LK_NBLCK=2, locking=locking))
    assert_a_second_store_is_refused(tmp_path)
    assert calls == [(2, 1), (2, 1)]


SETTINGS = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=1))


def test_the_queue_runs_in_submission_order_and_a_failed_job_keeps_its_progress(tmp_path):
    store = JobStore(tmp_path)
    try:
        first, second = (store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10) for _ in range(2))
        assert store.claim_next().id == first.id  # the oldest first
        assert store.set_progress(first.id, 40) and store.finish(first.id, ("generation_failed", "boom"))
        failed = store.get(first.id)
        assert (failed.status, failed.progress, failed.error_code) == (FAILED, 40, "generation_failed")
        assert store.claim_next().id == second.id and store.finish(second.id)
        assert (store.get(second.id).status, store.get(second.id).progress) == (COMPLETED, 100)
    finally:
        store.close()


def test_recover_keeps_finished_videos_and_the_images_and_states_of_queued_jobs(tmp_path):
    store = JobStore(tmp_path)
    done, running, waiting = (store.add(new_job_id(), "tiny", SETTINGS, True, max_active=10) for _ in range(3))
    for job in (done, running, waiting):
        store.input_path(job.id).write_bytes(b"png")
    for job in (done, waiting):  # (an orderly stop kept the waiting one's; the running one saved none yet)
        store.state_path(job.id).write_bytes(b"state")
    assert store.claim_next().id == done.id and store.finish(done.id)
    store.video_path(done.id).write_bytes(b"mp4")
    store.thumbnail_path(done.id).write_bytes(b"webp")
    assert store.claim_next().id == running.id  # then the process dies with these files half written:
    store.preview_path(running.id).write_bytes(b"webp")
    (store.videos / f".partial-{running.id}.mp4").write_bytes(b"mp")
    store.close()
    store = JobStore(tmp_path)
    try:
        assert store.recover() == jobs.Recovered(failed=[running.id], requeued=[])
        assert (store.get(running.id).status, store.get(running.id).error_code) == (FAILED, INTERRUPTED)
        assert sorted(p.name for p in store.videos.iterdir()) == [f"{done.id}.mp4", f"{done.id}.webp"]
        assert [p.name for p in store.inputs.iterdir()] == [f"{waiting.id}.png"]  # its job still needs it
        assert [p.name for p in store.states.iterdir()] == [f"{waiting.id}.latents.safetensors"]  # likewise
        assert store.claim_next().id == waiting.id
    finally:
        store.close()


def test_a_job_whose_video_was_whole_when_the_server_died_is_completed_after_the_restart(tmp_path):
    # The worker renames a job's video into place once it is whole, then writes its thumbnail and records the job
    # as completed: a crash in between failed the finished job as `interrupted` at the next start, and removed its
    # video.
    from test_server_extend import write_clip

    store = JobStore(tmp_path / "data")
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    assert store.claim_next().id == job.id
    made = write_clip(store.video_path(job.id), 48, 32, 5).read_bytes()
    os.utime(store.video_path(job.id), (1_700_000_000, 1_700_000_000))  # written before the stop, not at the start
    store.state_path(job.id).write_bytes(b"state")  # the sampling state goes once the video is whole; not yet
    store.close()
    with InProcessServer(None, tmp_path / "data") as server:
        assert server.server.recovered == jobs.Recovered(failed=[], requeued=[], completed=[job.id])
        code, video, _ = server.request("GET", f"/v1/videos/{job.id}")
        assert (code, video["status"], video["progress"], video["error"]) == (200, COMPLETED, 100, None)
        assert video["completed_at"] == 1_700_000_000  # when its video was whole
        assert server.request("GET", f"/v1/videos/{job.id}/content")[:2] == (200, made)
        assert server.request("GET", f"/v1/videos/{job.id}/content?variant=thumbnail")[0] == 200  # written now
        assert f"{job.id}: completed: its video was written whole before the server crashed" in server.log
        assert not server.store.state_path(job.id).exists()


def test_a_whole_video_whose_thumbnail_cannot_be_made_is_completed_all_the_same(tmp_path):
    # The thumbnail is a variant: a video it cannot be made from (a disk error, a codec) must not stop the start.
    store = JobStore(tmp_path / "data")
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    assert store.claim_next().id == job.id
    store.video_path(job.id).write_bytes(b"not a video")
    store.close()
    with InProcessServer(None, tmp_path / "data") as server:
        assert server.server.recovered.completed == [job.id]
        assert any(line.startswith(f"{job.id}: no thumbnail: ") for line in server.log), server.log
        assert f"{job.id}: completed: its video was written whole before the server crashed" in server.log


def test_recover_removes_only_the_files_the_store_wrote(tmp_path):
    # It removed every file of videos/, inputs/ and states/ that belonged to no job: `--data .` in a folder with a
    # videos/ of its own lost those videos at start (and a folder in there stopped the start with IsADirectoryError).
    store = JobStore(tmp_path)
    gone = new_job_id()
    ours = [store.videos / f".partial-123-{gone}.mp4", store.thumbnail_path(gone), store.input_path(gone),
            store.state_path(gone)]  # fmt: skip
    theirs = [store.videos / "holiday.mp4", store.videos / "notes.txt", store.inputs / "cat.png",
              store.states / "run.latents.safetensors", store.videos / "video_of_my_dog.mp4"]  # fmt: skip
    for path in ours + theirs:
        path.write_bytes(b"data")
    (store.videos / "clips").mkdir()
    store.close()
    store = JobStore(tmp_path)
    try:
        store.recover()
        assert [path for path in ours if path.exists()] == []
        assert [path for path in theirs if not path.exists()] == [] and (store.videos / "clips").is_dir()
    finally:
        store.close()


def test_progress_runs_through_the_stages_in_order():
    from motif_lite.server.worker import percent

    values = [percent("encode", i, 1) for i in (0, 1)] + [percent("denoise", i, 4) for i in range(5)]
    values += [percent("decode", i, 3) for i in range(4)]
    assert values[0] == 0 and values == sorted(values) and values[-1] < 100  # 100 is "completed"
    assert percent("encode", 1, 1) == percent("denoise", 0, 4) and percent("denoise", 4, 4) == percent("decode", 0, 3)
    assert percent("load", 1, 2) is None


def test_failure_codes():
    from motif_lite.errors import MotifLiteError
    from motif_lite.server.worker import failure

    code, message = failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB\ndetails"))
    assert code == "out_of_memory" and "Tried to allocate 2 GiB" in message and "details" not in message
    assert failure(MotifLiteError("this checkpoint has no image encoder")) == (
        "invalid_request",
        "this checkpoint has no image encoder",
    )
    assert failure(KeyError("x")) == ("generation_failed", "KeyError: 'x'")


def test_a_state_that_could_not_be_kept_is_not_offered_to_the_client(tmp_path):
    from motif_lite.server.worker import for_the_client

    state = tmp_path / "video_1.latents.safetensors"  # never written: a full disk
    message = f"cannot write the video\nthe latents could not be saved to {state} (OSError: no space left)"
    assert for_the_client(message, state) == "cannot write the video"
    assert for_the_client("this checkpoint has no image encoder", state) == "this checkpoint has no image encoder"


def test_guidance_off_shows_as_no_scale(pipe):
    # It said 1.0, which guides the official guider (original formulation) since 1 stopped meaning "off": a client
    # sending the default back would have guided. Off is null, as the method is.
    request, _ = GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=1, cfg_scale=0.0).resolve()
    effective = effective_settings(pipe.settings_for(request))
    assert (effective["guidance_scale"], effective["guidance_method"], effective["apg_eta"]) == (None, None, None)


def test_a_cpu_server_refuses_jobs_run_would_ask_about(pipe, tmp_path, monkeypatch):
    """On the CPU without --max-video, a job estimated over ~10 minutes (what `motif-lite run` asks about) is a 400
    with the estimate, not months in the queue; small jobs pass."""
    from motif_lite.cli import serve_loading
    from motif_lite.runtime import cost

    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: 1e6)  # a very slow CPU: 1 MFLOP/s
    too_long = serve_loading.cpu_time_limit(pipe, torch.float32)
    big = GenerationRequest(PROMPT, width=256, height=256, frames=33, steps=20, output=tmp_path / "a.mp4")
    resolved = big.resolve()[0]
    long = too_long(resolved, pipe.settings_for(resolved))
    assert long.why.startswith("on the CPU this run (256x256x33, 20 steps) is ") and "--max-video" in long.why
    with InProcessServer(pipe, tmp_path / "data", too_long=too_long) as running:
        code, error, _ = running.request("POST", "/v1/videos", {"prompt": PROMPT, "size": "256x256", "steps": 20})
        assert code == 400 and error["error"]["code"] == "invalid_value"
        assert "This server runs on the CPU" in error["error"]["message"]
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: 1e12)  # fast enough for the tiny model
    assert serve_loading.cpu_time_limit(pipe, torch.float32)(resolved, pipe.settings_for(resolved)) is None
    # The calls' fixed cost counts too: many steps of the tiny model, each call 0.1 s however small.
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.1)
    many = dataclasses.replace(resolved, steps=10_000)
    long = serve_loading.cpu_time_limit(pipe, torch.float32)(many, pipe.settings_for(many))
    assert long is not None and "transformer calls" in long.why and long.fields == ("steps",), long


def test_a_cpu_server_names_the_fields_that_make_a_job_too_long(pipe, tmp_path, monkeypatch):
    # It always said param "size", even for a small size and too many frames. On a CPU too slow for 256x256 at 121
    # frames, but fast enough for 272x272 at 9, the frames are to blame: num_frames, or seconds where the client
    # sent those.
    from motif_lite.cli import serve_loading
    from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS, run_flops
    from motif_lite.runtime import cost

    job = GenerationRequest(PROMPT, width=272, height=272, frames=121, steps=2, output=tmp_path / "a.mp4")
    job = job.resolve()[0]
    settings = pipe.settings_for(job)
    flops = {
        name: run_flops(dataclasses.replace(job, **change), settings, pipe.sources.configs)
        for name, change in {"job": {}, "smaller": {"width": 256, "height": 256}, "shorter": {"frames": 9}}.items()
    }
    assert flops["job"] > flops["smaller"] > flops["shorter"]  # the size lowered is the longer of the two
    rate = (flops["smaller"] * flops["shorter"]) ** 0.5 / LONG_CPU_RUN_SECONDS  # 256x256 too long, 9 frames not
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype: rate)
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.0)
    too_long = serve_loading.cpu_time_limit(pipe, torch.float32)
    assert too_long(job, settings).fields == ("frames",)
    with InProcessServer(pipe, tmp_path / "data", too_long=too_long) as running:
        body = {"prompt": PROMPT, "size": "272x272", "steps": 2, "fps": 24}
        code, error, _ = running.request("POST", "/v1/videos", {**body, "num_frames": 121})
        assert (code, error["error"]["param"]) == (400, "num_frames"), error
        assert error["error"]["message"].startswith("its num_frames makes this job too long: on the CPU this run")
        code, error, _ = running.request("POST", "/v1/videos", {**body, "seconds": "5"})  # 121 frames at 24 fps
        assert (code, error["error"]["param"]) == (400, "seconds"), error
        assert error["error"]["message"].startswith("its seconds make this job too long")  # a plural noun


def test_fields_too_long_names_each_field_that_alone_would_fix_the_job_else_all_that_are_over(tmp_path):
    from motif_lite.cli.serve_loading import fields_too_long

    def over(limit: int):  # too long above `limit` pixel-frame-steps
        return lambda r: r.width * r.height * r.frames * r.steps > limit

    def job(width: int, height: int, frames: int, steps: int) -> GenerationRequest:
        return GenerationRequest(PROMPT, width=width, height=height, frames=frames, steps=steps)

    assert fields_too_long(job(1280, 736, 9, 2), over(256 * 256 * 9 * 2)) == ("width",)  # only the size is over
    assert fields_too_long(job(256, 256, 121, 2), over(256 * 256 * 9 * 2)) == ("frames",)
    assert fields_too_long(job(256, 256, 9, 50), over(256 * 256 * 9 * 2)) == ("steps",)
    # 512x512x33, 2 steps: either the size or the frames brought down fits; both make it too long.
    assert fields_too_long(job(512, 512, 33, 2), over(512 * 512 * 20 * 2)) == ("width", "frames")
    # Neither alone fits: both, together (the steps are not over).
    assert fields_too_long(job(1280, 736, 121, 2), over(256 * 256 * 9 * 2)) == ("width", "frames")


def run_stopping_at(worker, job_id: str, stop_at: int | None) -> None:
    """The worker runs its store's next job; the server's shutdown arrives once its progress reaches `stop_at`."""
    report = worker.store.set_progress

    def set_progress(job, progress):
        if stop_at is not None and progress >= stop_at:
            worker._stopping.set()  # what `stop()` sets; the job stops at its next step
        return report(job, progress)

    worker.store.set_progress = set_progress
    try:
        job = worker.store.claim_next()
        assert job.id == job_id
        worker.run_job(job)
    finally:
        worker.store.set_progress = report
        worker._stopping.clear()


# The CLI's advice, which the server's log must not give: the server resumes, decodes and deletes by itself.
CLI_ADVICE = ("motif-lite run --resume", "motif-lite decode", "--preview-every")


def assert_no_cli_advice(caplog) -> None:
    advice = [r.getMessage() for r in caplog.records if any(words in r.getMessage() for words in CLI_ADVICE)]
    assert advice == [], advice


def test_a_job_stopped_by_shutdown_goes_on_from_its_state_to_the_same_video(pipe, tmp_path, monkeypatch, caplog):
    from motif_lite.io.latents import read_latents
    from motif_lite.server.worker import Worker, percent

    settings = {**SETTINGS, "steps": 6}
    store = JobStore(tmp_path)
    lines = []
    worker = Worker(store, pipe, lines.append)
    try:
        whole = store.add(new_job_id(), "tiny", settings, False, max_active=10)
        run_stopping_at(worker, whole.id, None)
        stopped = store.add(new_job_id(), "tiny", settings, False, max_active=10)
        run_stopping_at(worker, stopped.id, percent("denoise", 2, 6))  # stops after step 3
        assert store.get(stopped.id).status == QUEUED
        assert read_latents(store.state_path(stopped.id)).progress == (3, 6)
        assert (
            lines[-1] == f"{stopped.id}: stopped by shutdown after step 3 of 6, queued again: it goes on from "
            "that step when the server starts again"
        )
        assert not store.video_path(stopped.id).exists()
        store.close()
        store = JobStore(tmp_path)  # the server starts again
        worker.store = store
        assert store.recover() == jobs.Recovered([], []) and store.state_path(stopped.id).exists()  # queued
        forward, calls = pipe.transformer.forward, []
        monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
        run_stopping_at(worker, stopped.id, None)
        assert f"{stopped.id}: goes on from step 3 of 6" in lines and len(calls) == 3 * 2  # 3 guided steps
        assert store.get(stopped.id).status == COMPLETED and not store.state_path(stopped.id).exists()
        assert store.video_path(stopped.id).read_bytes() == store.video_path(whole.id).read_bytes()
        # Stopped while it decoded: the denoised latents are kept, and the next run only decodes them.
        decoding = store.add(new_job_id(), "tiny", settings, False, max_active=10)
        run_stopping_at(worker, decoding.id, percent("decode", 0, 1))
        assert read_latents(store.state_path(decoding.id)).denoised and store.get(decoding.id).status == QUEUED
        assert (
            lines[-1] == f"{decoding.id}: stopped by shutdown while decoding, queued again: its denoised "
            "latents are kept and decoded when the server starts again"
        )
        calls.clear()
        run_stopping_at(worker, decoding.id, None)
        assert f"{decoding.id}: goes on from its denoised latents (the decode only)" in lines and calls == []
        assert store.video_path(decoding.id).read_bytes() == store.video_path(whole.id).read_bytes()
        assert_no_cli_advice(caplog)  # it said "motif-lite run --resume", "motif-lite decode" and "--preview-every"
    finally:
        store.close()


def test_a_job_deleted_in_the_step_the_shutdown_came_in_leaves_no_state_and_is_not_said_queued(pipe, tmp_path):
    # A client's DELETE, then the server's stop, both while a step ran (minutes on a CPU): the shutdown stopped the
    # job first, it saved its state, and the log said "queued again: it goes on from that step" for a job no longer
    # there, whose state stayed in states/ until the next start.
    from motif_lite.server.worker import Worker, percent

    store = JobStore(tmp_path)
    lines: list[str] = []
    worker = Worker(store, pipe, lines.append)
    report = store.set_progress
    try:
        job = store.add(new_job_id(), "tiny", {**SETTINGS, "steps": 6}, False, max_active=10)

        def set_progress(job_id, progress):
            recorded = report(job_id, progress)
            if progress >= percent("denoise", 2, 6):  # during the next step: the client's cancel, then the stop
                store.delete(job_id)
                worker._stopping.set()  # what `stop()` sets
            return recorded

        store.set_progress = set_progress
        worker.run_job(store.claim_next())
        assert lines[-1] == f"{job.id}: deleted, stopped", lines
        assert not any("queued again" in line for line in lines)
        assert store.get(job.id) is None and list(tmp_path.rglob(f"*{job.id}*")) == []
    finally:
        store.set_progress = report
        store.close()


@contextlib.contextmanager
def a_job_stopped_after_step_3(pipe, tmp_path: Path, image: bool = False):
    """-> (store, worker, job, log lines): a 6-step job (with an uploaded image: `image`) the server's shutdown
    stopped after step 3, queued again with its state kept."""
    from motif_lite.server.worker import Worker, percent

    store = JobStore(tmp_path)
    lines = []
    worker = Worker(store, pipe, lines.append)
    try:
        job = store.add(new_job_id(), "tiny", {**SETTINGS, "steps": 6}, image, max_active=10)
        if image:
            store.input_path(job.id).write_bytes(png())
        run_stopping_at(worker, job.id, percent("denoise", 2, 6))
        assert store.get(job.id).status == QUEUED and store.state_path(job.id).exists()
        yield store, worker, job, lines
    finally:
        store.close()


def test_a_resumed_jobs_progress_starts_at_its_step_and_never_goes_back(pipe, tmp_path):
    # It went back to 0-5% (its prompts encoded again) before it jumped to the step it resumed from.
    from motif_lite.io.latents import read_latents
    from motif_lite.server.worker import percent, resumed_percent

    with a_job_stopped_after_step_3(pipe, tmp_path) as (store, worker, job, lines):
        saved = read_latents(store.state_path(job.id))
        reported, report = [], store.set_progress
        store.set_progress = lambda job_id, progress: reported.append(progress) or report(job_id, progress)
        run_stopping_at(worker, job.id, None)
        assert store.get(job.id).status == COMPLETED
        reached = percent("denoise", 3, 6)
        assert reported[0] == reached and reported == sorted(reported) and reached < reported[-1], reported
        # Stopped while it decoded: it starts where the decode starts.
        assert resumed_percent(dataclasses.replace(saved, progress=None)) == percent("decode", 0, 1)
        assert resumed_percent(None) == 0


@pytest.mark.parametrize("shown", [None, 90])
def test_a_restarted_jobs_progress_never_shows_0_before_its_state_is_read(pipe, tmp_path, shown):
    # Queued again and claimed after a restart, a job showed progress 0 until its saved state had been read (its
    # image hashed, its clip read): it keeps the percent it had reached, queued and claimed. `shown`: a percent
    # shown past the state's step (steps run after the last periodic save); it does not fall back to the state's.
    with a_job_stopped_after_step_3(pipe, tmp_path) as (store, worker, job, lines):
        if shown is not None:  # claimed, shown further on, then queued again with the state
            assert store.claim_next().id == job.id and store.set_progress(job.id, shown)
            store.requeue(job.id)
        reached = store.get(job.id).progress
        store.close()
        store = worker.store = JobStore(tmp_path)  # the server starts again
        try:
            store.recover()
            assert reached > 0 and store.get(job.id).progress == reached  # queued, as far as it had got
            seen, read = [], worker._saved_state
            worker._saved_state = lambda job_id, *a: seen.append(store.get(job_id).progress) or read(job_id, *a)
            reported, report = [], store.set_progress
            store.set_progress = lambda job_id, progress: reported.append(progress) or report(job_id, progress)
            run_stopping_at(worker, job.id, None)
            assert seen == [reached] and min(reported) >= reached, (seen, reported)
            assert store.get(job.id).status == COMPLETED
        finally:
            store.close()


def test_a_saved_state_another_checkpoint_made_is_dropped_and_the_job_starts_over(pipe, tmp_path, monkeypatch):
    # The server came back with another scheduler shift: the job failed with a message whose one line named the
    # state's path, which the client was not shown, so it got "; submit the job again ..." and no cause.
    with a_job_stopped_after_step_3(pipe, tmp_path) as (store, worker, job, lines):
        configs = dataclasses.replace(pipe.sources.configs, scheduler_shift=11.0)
        monkeypatch.setattr(pipe, "sources", dataclasses.replace(pipe.sources, configs=configs))
        forward, calls = pipe.transformer.forward, []
        monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
        reached, reported, report = store.get(job.id).progress, [], store.set_progress
        monkeypatch.setattr(store, "set_progress", lambda job_id, p: reported.append(p) or report(job_id, p))
        run_stopping_at(worker, job.id, None)
        done = store.get(job.id)
        assert (done.status, done.error_message) == (COMPLETED, None), done.error_message
        assert reached > 0 and reported[0] < reached, reported  # it starts over: its progress too
        assert len(calls) == 6 * 2  # every step again: nothing of the other shift's state was used
        dropped = [line for line in lines if "its saved state does not fit this server" in line]
        assert len(dropped) == 1 and "flow_shift" in dropped[0] and dropped[0].endswith(": starting again"), lines
        assert str(store.state_path(job.id)) not in dropped[0]


def test_a_resumed_image_job_reads_its_image_once(pipe, tmp_path, monkeypatch):
    # The worker resolved the request to check the saved state, and `generate` resolved it again: the uploaded
    # image was read and decoded twice. The worker's resolution is handed on (`generate(resolved=...)`).
    from motif_lite.io import image as image_module

    with a_job_stopped_after_step_3(pipe, tmp_path, image=True) as (store, worker, job, lines):
        read, reads = image_module.read_image, []
        monkeypatch.setattr(
            image_module, "read_image", lambda path, *audience: reads.append(path) or read(path, *audience)
        )
        run_stopping_at(worker, job.id, None)
        done = store.get(job.id)
        assert (done.status, done.error_message) == (COMPLETED, None), done.error_message
        assert f"{job.id}: goes on from step 3 of 6" in lines
        assert reads == [store.input_path(job.id)]


def test_an_image_job_hashes_its_image_once_each_time_it_runs(pipe, tmp_path, monkeypatch):
    # The uploaded image was hashed for its video file's settings (`stored_image`), for the key of its kept
    # encodings and at every save of the job's state, and going on from one twice more (the worker's check of the
    # state, `generate`'s): it is hashed as the worker resolves the job's request, which `generate` takes.
    from test_resume import counted_hashes

    hashes = counted_hashes(monkeypatch)
    monkeypatch.setattr(pipe, "save_state_every", 0.0)  # a save after every step, and one as it stops
    pipe.kept_encodings.clear()
    with a_job_stopped_after_step_3(pipe, tmp_path, image=True) as (store, worker, job, lines):
        assert len(hashes) == 1
        pipe.kept_encodings.clear()  # the job encodes its image again, as a server started again would
        run_stopping_at(worker, job.id, None)
        done = store.get(job.id)
        assert (done.status, done.error_message) == (COMPLETED, None), done.error_message
        assert f"{job.id}: goes on from step 3 of 6" in lines
        assert len(hashes) == 2
        video = store.video_path(job.id)
        assert read_settings(video).values["image_sha256"] == hashlib.sha256(png()).hexdigest()


def test_a_client_gets_the_cause_of_a_failure_that_names_the_saved_state(tmp_path):
    from motif_lite.server.worker import for_the_client

    state = tmp_path / "video_1.latents.safetensors"
    state.write_bytes(b"state")
    message = f"{state}: its sampling state is damaged\nthe latents are kept in {state}: motif-lite run --resume"
    said = for_the_client(message, state)
    assert said.startswith("the job's saved state: its sampling state is damaged; submit the job again"), said
    assert str(state) not in said


def test_a_database_without_the_notes_column_gets_it(tmp_path):
    # A data folder of the version before notes: CREATE TABLE IF NOT EXISTS keeps its table as it is.
    import sqlite3

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT "
                "NULL, progress INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, started_at INTEGER, "
                "completed_at INTEGER, model TEXT NOT NULL, settings TEXT NOT NULL, effective TEXT NOT NULL DEFAULT "
                "'{}', has_image INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT)")  # fmt: skip
    queued = new_job_id()
    old.execute("INSERT INTO jobs (id, status, created_at, model, settings) VALUES (?, ?, 0, 'tiny', ?)",
                (queued, QUEUED, json.dumps(SETTINGS)))  # fmt: skip
    old.commit()
    old.close()
    store = JobStore(tmp_path)
    try:
        assert store.get(queued).notes == [] and store.claim_next().id == queued
        assert store.add(new_job_id(), "tiny", SETTINGS, False, 10, notes=["a note"]).notes == ["a note"]
    finally:
        store.close()


def test_a_data_folder_from_before_the_prompt_warnings_column_lists_and_serves_its_jobs(pipe, tmp_path):
    # Version 8 keeps the text encoder's warnings on a job's cut prompts beside its notes; a server started again over
    # a data folder of version 7 reads its jobs as holding none, lists them and runs them.
    import sqlite3

    store = JobStore(tmp_path)
    settings = job_request_fields(GenerationRequest(PROMPT, width=48, height=32, frames=5, seed=1, steps=1))
    queued = store.add(new_job_id(), "tiny", settings, False, 10, notes=["a note"], prompt_warnings=["cut"]).id
    store.close()
    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.execute("ALTER TABLE jobs DROP COLUMN prompt_warnings")
    old.execute("PRAGMA user_version=7")
    old.commit()
    old.close()
    with InProcessServer(pipe, tmp_path) as server:
        code, listing, _ = server.request("GET", "/v1/videos")
        assert code == 200 and [(v["id"], v["notes"]) for v in listing["data"]] == [(queued, ["a note"])], listing
        assert server.wait_status(queued, ("completed",))["notes"] == ["a note"]
        assert server.store.get(queued).prompt_warnings == []
        code, video, _ = server.request("GET", f"/v1/videos/{queued}/content")
        assert code == 200 and video == server.store.video_path(queued).read_bytes()
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == jobs.SCHEMA_VERSION == 8
    database.close()


def test_a_database_of_a_newer_version_is_refused_and_left_as_it_is(tmp_path):
    # It was opened and its version overwritten with this one's, without a word.
    import sqlite3

    from motif_lite.errors import MotifLiteError

    JobStore(tmp_path).close()
    newer = jobs.SCHEMA_VERSION + 1
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    database.execute(f"PRAGMA user_version={newer}")
    database.close()
    with pytest.raises(MotifLiteError, match=f"written by a newer motif-lite .job database version {newer};"):
        JobStore(tmp_path)
    database = sqlite3.connect(tmp_path / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == newer
    database.close()
    with pytest.raises(MotifLiteError, match="newer"):  # again: the refused open released the folder's lock
        JobStore(tmp_path)


def test_deleting_a_job_removes_its_state(tmp_path):
    store = JobStore(tmp_path)
    try:
        job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
        store.state_path(job.id).write_bytes(b"state")
        store.delete(job.id)
        assert list(store.states.iterdir()) == []
    finally:
        store.close()


def test_a_finished_job_loses_what_it_was_given_and_keeps_the_state_it_made(tmp_path):
    # Its first frame, the video it went on from and its retry mark are of no use once it ends; a failed job's
    # sampling state is where its work is kept (the operator's log names it): it stays until the job is deleted.
    store = JobStore(tmp_path)
    try:
        job = store.add(new_job_id(), "tiny", SETTINGS, True, max_active=10)
        given = [store.input_path(job.id), store.clip_path(job.id), store.retried_path(job.id)]
        for path in [*given, store.state_path(job.id)]:
            path.write_bytes(b"data")
        assert store.claim_next().id == job.id and store.finish(job.id, ("generation_failed", "it failed"))
        assert [path for path in given if path.exists()] == [] and store.state_path(job.id).exists()
        store.retried_path(job.id).write_bytes(b"")
        store.remove_files(job.id)
        assert list(store.states.iterdir()) == []
    finally:
        store.close()


def test_a_job_queued_again_at_a_stop_keeps_its_progress_only_with_a_saved_state(tmp_path):
    """An orderly stop puts the running jobs back in the queue: one that goes on from its saved state shows the
    percent it had reached; one without a state starts over, at 0 (not a percent it will fall back from)."""
    store = JobStore(tmp_path)
    try:
        saved, unsaved = (store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10) for _ in range(2))
        for job in (saved, unsaved):
            assert store.claim_next().id == job.id and store.set_progress(job.id, 40)
        store.state_path(saved.id).write_bytes(b"state")  # the last periodic save
        for job in (saved, unsaved):
            store.requeue(job.id)
        assert (store.get(saved.id).status, store.get(saved.id).progress) == (QUEUED, 40)
        assert (store.get(unsaved.id).status, store.get(unsaved.id).progress) == (QUEUED, 0)
    finally:
        store.close()


def test_a_crashed_job_goes_back_to_the_queue_once_from_its_saved_state(tmp_path):
    """A job killed with the server (power, the OOM killer) after a periodic save goes on from it after the restart;
    a second crash fails it, so that a crash the job itself causes cannot loop."""
    store = JobStore(tmp_path)
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    assert store.claim_next().id == job.id and store.set_progress(job.id, 30)
    store.state_path(job.id).write_bytes(b"state")  # the last periodic save
    store.close()  # the process dies
    store = JobStore(tmp_path)
    assert store.recover() == jobs.Recovered(failed=[], requeued=[job.id])
    # Queued with the percent it had reached: it goes on from its state (claimed again, it keeps it too).
    assert (store.get(job.id).status, store.get(job.id).progress) == (QUEUED, 30)
    assert store.state_path(job.id).exists() and store.retried_path(job.id).exists()
    assert store.claim_next().id == job.id  # and it dies again
    store.close()
    store = JobStore(tmp_path)
    try:
        assert store.recover() == jobs.Recovered(failed=[job.id], requeued=[])
        assert (store.get(job.id).status, store.get(job.id).error_code) == (FAILED, INTERRUPTED)
        assert list(store.states.iterdir()) == []
        other = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
        store.retried_path(other.id).touch()
        assert store.claim_next().id == other.id and store.finish(other.id)
        assert not store.retried_path(other.id).exists()  # a finished job's mark goes with it
    finally:
        store.close()


def test_a_job_the_data_folder_cannot_hold_is_507_not_a_traceback(pipe, tmp_path, monkeypatch):
    # Before: a full disk made every POST a 500 "internal error: OperationalError: database or disk is full", with
    # ~30 lines of traceback in the log per request.
    import sqlite3

    with InProcessServer(pipe, tmp_path / "data") as server:

        def full(*args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(server.store, "add", full)
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 507 and error["error"]["code"] == "storage_full", error
        assert error["error"]["message"].startswith("the server cannot store the job (database or disk is full)")
        assert list((tmp_path / "data" / "inputs").glob("*")) == []
        # A job with a first frame: the image written for it is removed again.
        data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
        body = {"prompt": PROMPT, **LONG, "input_reference": {"image_url": data_url}}
        assert server.request("POST", "/v1/videos", body)[0] == 507
        assert list((tmp_path / "data" / "inputs").glob("*")) == []

        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "data" / "jobs.db"))

        monkeypatch.setattr(server.store, "add", no_space)  # the reason without the server's path or errno
        code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 507 and "cannot store the job (No space left on device): its data" in error["error"]["message"]
        assert str(tmp_path) not in error["error"]["message"], error
        # Not retried at once (x-should-retry: false): "try again later" alone read as a contradiction.
        assert error["error"]["message"].endswith(
            "; try again later, once space is freed, or ask the server's operator"
        )


def test_an_sdk_client_does_not_send_a_job_again_into_a_full_disk(pipe, tmp_path, monkeypatch):
    # The SDK retried the 507 twice, sending the whole body (up to ~101 MiB for an uploaded video) three times.
    with InProcessServer(pipe, tmp_path / "data") as server:
        stored: list[str] = []

        def no_space(job_id, *args, **kwargs):
            stored.append(job_id)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(server.store, "add", no_space)
        code, _, headers = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
        assert code == 507 and headers["x-should-retry"] == "false"
        stored.clear()

        def create(client: openai.OpenAI) -> None:
            client.videos.create(prompt=PROMPT, extra_body=LONG)

        error = raised_with_the_sdks_retries(server, create)
        assert (error.status_code, len(stored)) == (507, 1)  # one request received: three before


def test_the_info_defaults_are_none_where_a_job_without_settings_gets_none(pipe):
    # GET /v1/info: no image-to-video defaults on a server whose checkpoint takes no image, and none at all where
    # the checkpoint refuses a job that names no sampler (its scheduler config is none of motif-lite's samplers).
    from motif_lite.request import RequestError
    from motif_lite.server.app import ServerConfig, job_defaults

    defaults = job_defaults(pipe, ServerConfig(model_name="tiny"))
    assert defaults["text_to_video"] is not None and defaults["image_to_video"] is not None
    assert job_defaults(pipe, ServerConfig(model_name="tiny", image_to_video=False))["image_to_video"] is None

    def refused(request: GenerationRequest) -> None:
        raise RequestError("scheduler/scheduler_config.json holds a KDPM2DiscreteScheduler: choose a sampler")

    refusing = types.SimpleNamespace(settings_for=refused)
    assert job_defaults(refusing, ServerConfig(model_name="tiny")) == {"text_to_video": None, "image_to_video": None}


def test_the_info_defaults_of_a_first_frame_have_its_own_flow_shift(tmp_path):
    # A scheduler config without a Motif shift (1.0, diffusers' class default): 15 from text, 8 from a first frame.
    from tiny_pipeline import make_tiny_checkpoint

    from motif_lite.server.app import ServerConfig, job_defaults

    make_tiny_checkpoint(tmp_path / "ckpt", shift=1.0)
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    defaults = job_defaults(pipe, ServerConfig(model_name="tiny"))
    assert (defaults["text_to_video"]["flow_shift"], defaults["image_to_video"]["flow_shift"]) == (15, 8)


def test_the_info_defaults_of_a_disabled_guider_say_guidance_off_with_no_scale(tmp_path):
    # The guider's `enabled: false`: off, whatever its scale of 8. GET /v1/info said guidance_scale 1.0, which
    # guides the official guider: a client sending that default back would have guided.
    from tiny_pipeline import make_tiny_checkpoint, official_apg

    from motif_lite.server.app import ServerConfig, job_defaults

    make_tiny_checkpoint(tmp_path / "ckpt", guider=official_apg(enabled=False))
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    for kind, defaults in job_defaults(pipe, ServerConfig(model_name="tiny")).items():
        guidance = (defaults["guidance_method"], defaults["guidance_scale"], defaults["apg_eta"])
        assert guidance == (None, None, None), kind


def _videos_disk_full(monkeypatch, videos: Path) -> None:
    """shutil.disk_usage says the disk of `videos` (the server's output folder) has 1 kB free."""
    import shutil

    real = shutil.disk_usage

    def usage(path):
        found = real(path)
        return found._replace(free=1000) if Path(path) == videos else found

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_a_full_data_disk_is_507_at_submission_not_the_clients_mistake(server, monkeypatch):
    # The output check's "disk is full" refusal was a 400 invalid_request naming the server's path and -o.
    _videos_disk_full(monkeypatch, server.store.videos)
    code, error, _ = server.request("POST", "/v1/videos", {"prompt": PROMPT, **LONG})
    assert code == 507 and error["error"]["code"] == "storage_full", error
    assert "-o" not in error["error"]["message"] and str(server.store.root) not in error["error"]["message"]


def test_a_data_disk_full_when_a_job_starts_stops_the_server_with_the_job_queued_again(pipe, tmp_path, monkeypatch):
    # Every queued job failed at once as invalid_request ("write the video to another disk (-o)"), the server going
    # on; a data folder that cannot be written stops it (docs/server.md), the job kept for when it starts again.
    store = JobStore(tmp_path / "data")
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    _videos_disk_full(monkeypatch, store.videos)
    stopped, log = served_until_it_stops(pipe, store)
    assert stopped and "is full" in stopped[0], (stopped, log)
    again = JobStore(tmp_path / "data")  # the server closed its store as it stopped
    try:
        assert again.get(job.id).status == QUEUED
    finally:
        again.close()


def test_a_job_queued_again_without_a_saved_state_starts_at_0_and_with_one_keeps_its_progress(tmp_path):
    # An orderly stop before the job's first saved state: it starts over, so its progress shows 0 again.
    store = JobStore(tmp_path)
    try:
        job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
        assert store.claim_next().id == job.id and store.set_progress(job.id, 40)
        store.requeue(job.id)
        assert (store.get(job.id).status, store.get(job.id).progress) == (QUEUED, 0)
        assert store.claim_next().id == job.id and store.set_progress(job.id, 40)
        store.state_path(job.id).write_bytes(b"state")  # now it goes on from a saved state
        store.requeue(job.id)
        assert (store.get(job.id).status, store.get(job.id).progress) == (QUEUED, 40)
    finally:
        store.close()


def test_a_job_queued_again_after_a_crash_keeps_the_progress_it_had_reached(tmp_path):
    # `recover()` after the process died: a running job with a saved state is queued with its progress, not 0.
    store = JobStore(tmp_path)
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    assert store.claim_next().id == job.id and store.set_progress(job.id, 40)
    store.state_path(job.id).write_bytes(b"state")
    store.close()
    store = JobStore(tmp_path)  # the server starts again
    try:
        assert store.recover().requeued == [job.id]
        assert (store.get(job.id).status, store.get(job.id).progress) == (QUEUED, 40)
    finally:
        store.close()


def test_a_resumed_job_never_reports_less_than_the_progress_it_had_stored(pipe, tmp_path):
    # Its stored progress can be past its state's step (it stopped while it decoded, after its last save): the
    # worker starts at the larger of the two, never going back to the state's percent.
    from motif_lite.io.latents import read_latents
    from motif_lite.server.worker import resumed_percent

    with a_job_stopped_after_step_3(pipe, tmp_path) as (store, worker, job, lines):
        stored = resumed_percent(read_latents(store.state_path(job.id))) + 7
        assert store.claim_next().id == job.id and store.set_progress(job.id, stored)
        store.requeue(job.id)  # its state is kept, so its progress is too
        reported, report = [], store.set_progress
        store.set_progress = lambda job_id, progress: reported.append(progress) or report(job_id, progress)
        run_stopping_at(worker, job.id, None)
        assert store.get(job.id).status == COMPLETED
        assert reported and min(reported) >= stored, (stored, reported)


def test_repeated_names_are_named_each_once_and_sorted():
    # The refusal names them in one order whatever the order of Python's set of them (its hash seed).
    from motif_lite.server.schema import repeated_names

    names = [f"name{i:02d}" for i in range(40)]
    assert repeated_names([*reversed(names), "once", *names, names[0]]) == names


def test_a_forms_loras_json_text_is_refused_for_a_repeat_in_any_object_or_nesting_past_pythons_stack():
    # A repeat in the first of two objects was found only in the last one parsed, and a text nested deeper than
    # Python's stack was a RecursionError (a 500), where the same in a JSON body is a 400.
    from motif_lite.server.schema import ApiError, parse_loras

    twice = '[{"name": "a.safetensors", "name": "b.safetensors"}, {"name": "c.safetensors"}]'
    with pytest.raises(ApiError, match="'name' was sent twice in one of loras' JSON objects"):
        parse_loras(twice, from_form=True)
    with pytest.raises(ApiError, match="in a form, loras is JSON text"):
        parse_loras("[" * 100_000 + "]" * 100_000, from_form=True)


def test_json_sent_as_text_after_white_space_is_still_said_to_be_json(server):
    # A body that starts with a newline or spaces before its `{` (a template string, a pretty-printed file) is
    # JSON as much, and is told the header to add, not the bare "not text/plain".
    text = {"Content-Type": "text/plain"}
    for lead in (b"\n", b"  ", b"\r\n\t"):
        code, error, _ = server.request("POST", "/v1/videos", lead + json.dumps({"prompt": PROMPT}).encode(), text)
        assert code == 415 and error["error"]["message"].startswith("the body looks like JSON"), (lead, error)
    assert server.request("GET", "/v1/videos")[1]["data"] == []


def test_a_preflight_of_a_method_refused_by_a_server_taking_any_origin_blames_the_method_alone():
    # With --cors-origin '*' every origin is taken: a refusal of the method alone says nothing of the page's origin
    # (not "pages of ORIGIN may not call this server, which takes calls from pages of * only").
    from starlette.datastructures import Headers

    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["*"])
    asked = {"origin": "https://page.example", "access-control-request-method": "PUT"}
    response = cors.preflight_response(Headers(asked))
    message = json.loads(response.body)["error"]["message"]
    assert response.status_code == 400 and message == (
        "CORS preflight refused: PUT is no method of this API (it takes GET, POST)"
    ), message


def test_a_type_with_json_inside_its_subtype_not_at_its_end_is_415(server):
    # Only a subtype ending in +json is JSON text (RFC 6839): application/geo+json-seq (RFC 8142) is a sequence of
    # JSON texts, each after a record separator, no one JSON object.
    body = json.dumps({"prompt": PROMPT}).encode()
    for content_type in ("application/geo+json-seq", "application/x+jsonx"):
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 415 and error["error"]["message"].endswith(f"not {content_type}"), (content_type, error)
    assert server.request("GET", "/v1/videos")[1]["data"] == []


@pytest.mark.parametrize("seconds", [True, False])
def test_a_json_true_or_false_for_seconds_is_refused_not_counted_as_one_second(seconds):
    # Python's float(True) is 1.0: `"seconds": true` made a job of 1 s (25 frames at 24 fps), where every other
    # number field of the API refuses JSON's true and false.
    from motif_lite.server.schema import ApiError, parse_create

    with pytest.raises(ApiError) as refused:
        parse_create({"prompt": PROMPT, "seconds": seconds}, None, from_form=False)
    assert (refused.value.status, refused.value.param) == (400, "seconds")
    assert refused.value.message == f"seconds must be a positive number, got {json.dumps(seconds)}"


@pytest.mark.parametrize(
    ("status", "steps", "said"),
    [
        (
            "in_progress",
            1000,
            " now: previews exist while a job is denoising, after steps 250, 500 and 750 of its 1000",
        ),
        ("in_progress", 2, " now: previews exist while a job is denoising, after step 1 of its 2"),
        ("queued", 8, " yet: it is queued; previews exist while a job is denoising, after steps 2, 4 and 6 of its 8"),
        ("in_progress", 1, ": a job of 1 step makes none (previews come between its steps, never after the last one)"),
    ],
)
def test_a_preview_asked_before_the_first_one_says_after_which_steps_they_come(tmp_path, status, steps, said):
    # It said "no preview of ... yet: previews exist while a job is denoising" to a client asking of a job that was
    # denoising (its first quarter of steps), or of a 1-step job, which makes none: it would poll in vain.
    from motif_lite.io.preview import preview_steps
    from motif_lite.server.app import _preview
    from motif_lite.server.job_record import Job
    from motif_lite.server.schema import ApiError

    job = Job("video_" + "0" * 32, 1, status, 7, 0.0, None, None, "tiny", {"steps": steps}, {}, False, None, None,
              [], [])  # fmt: skip
    store = types.SimpleNamespace(preview_path=lambda job_id: tmp_path / "none.webp")  # no preview written
    with pytest.raises(ApiError) as refused:
        _preview(store, job)
    assert (refused.value.status, refused.value.code) == (404, "preview_not_ready")
    assert refused.value.message == f"no preview of {job.id}{said}"
    listed = re.search(r"after steps? ([\d, and]+) of", said)
    named = [int(n) for n in re.findall(r"\d+", listed[1])] if listed else []
    assert named == preview_steps(steps, None)  # the steps the pipeline makes its previews after


def test_a_json_body_in_another_charset_is_told_to_send_utf8_not_pythons_codec_error(server):
    # It was "the body is not valid JSON: 'utf-8' codec can't decode byte 0xe9 in position 14: invalid continuation
    # byte", Python's words, to a client whose library encoded the body as the charset its Content-Type named.
    body = json.dumps({"prompt": "a café at night"}, ensure_ascii=False).encode("latin-1")
    at = body.index(b"\xe9")
    for content_type, named in [
        (
            "application/json; charset=latin-1",
            " (its Content-Type names charset=latin-1, which this server does not read)",
        ),  # fmt: skip
        ("application/json", ""),
    ]:
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 400 and error["error"]["code"] == "invalid_value", error
        assert error["error"]["message"] == (
            f"the body is not valid JSON: it is not UTF-8 text (byte {at} is 0xe9); send the JSON encoded as UTF-8, "
            f"as JSON is exchanged{named}"
        )
    assert server.request("GET", "/v1/videos")[1]["data"] == []


@pytest.mark.parametrize(
    ("origin", "advised"),
    [
        ("http://localhost:3000/", "--cors-origin http://localhost:3000 to add that origin, which a browser sends as"),
        ("HTTPS://App.Example.com:443", "--cors-origin https://app.example.com to add that origin"),
        ("http://page.test", "--cors-origin http://page.test to add that origin)"),
    ],
)
def test_a_refused_preflights_origin_is_advised_as_serve_takes_it(origin, advised):
    # A preflight from `http://localhost:3000/` (curl, a trailing slash) was advised `--cors-origin
    # http://localhost:3000/`, a value serve refuses at start.
    from starlette.datastructures import Headers

    from motif_lite.cli.serve_flag_values import cors_origin
    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["http://other.test"], allow_methods=["GET", "POST"], allow_headers=["*"])
    asked = {"origin": origin, "access-control-request-method": "POST"}
    message = json.loads(cors.preflight_response(Headers(asked)).body)["error"]["message"]
    assert advised in message, message
    given = message.split("--cors-origin ")[1].split(" ")[0]
    assert cors_origin(given) == given  # serve takes it


def test_a_refused_preflights_origin_that_is_none_is_said_to_be_none():
    from starlette.datastructures import Headers

    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["http://other.test"], allow_methods=["GET", "POST"], allow_headers=["*"])
    asked = {"origin": "localhost:3000", "access-control-request-method": "POST"}
    message = json.loads(cors.preflight_response(Headers(asked)).body)["error"]["message"]
    assert "localhost:3000 is no origin serve takes: a browser sends scheme://host[:port]" in message, message
    assert "--cors-origin" not in message, message


def test_a_quoted_charset_of_a_body_not_utf8_is_named_without_its_quotes(server):
    # RFC 9110 lets a parameter's value be quoted (charset="ISO-8859-1"), and its name be of any case: the charset
    # is named as it is, not as `charset="ISO-8859-1"` with the quotes, nor left out for a capital C.
    body = json.dumps({"prompt": "a café at night"}, ensure_ascii=False).encode("latin-1")
    for content_type in ['application/json; charset="ISO-8859-1"', "application/json;Charset=ISO-8859-1"]:
        code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": content_type})
        assert code == 400, error
        said = error["error"]["message"]
        assert said.endswith(" (its Content-Type names charset=ISO-8859-1, which this server does not read)"), said


@pytest.mark.parametrize("origin", ["http://localhost:3000/", "http://LOCALHOST:3000", "http://localhost:3000/app"])
def test_a_refused_preflights_origin_that_serve_takes_as_a_browser_sends_it_is_told_so(origin):
    # curl's `Origin: http://localhost:3000/` to a server started with --cors-origin http://localhost:3000 was told
    # to start it with --cors-origin http://localhost:3000, which it had: the advice changed nothing.
    from starlette.datastructures import Headers

    from motif_lite.server.cors import ApiCors

    allowed = ["http://localhost:3000"]
    cors = ApiCors(None, allow_origins=allowed, allow_methods=["GET", "POST"], allow_headers=["*"])
    asked = {"origin": origin, "access-control-request-method": "POST"}
    message = json.loads(cors.preflight_response(Headers(asked)).body)["error"]["message"]
    assert "start it with --cors-origin" not in message, message
    assert f"a browser sends it as {allowed[0]}, which this server takes: send the Origin header as a browser" in (
        message
    )


def test_a_refused_preflights_origin_of_a_star_is_told_a_browser_never_sends_it():
    # curl's `Origin: *` was told "* is no origin serve takes", though serve takes `--cors-origin '*'`.
    from starlette.datastructures import Headers

    from motif_lite.server.cors import ApiCors

    cors = ApiCors(None, allow_origins=["http://other.test"], allow_methods=["GET", "POST"], allow_headers=["*"])
    asked = {"origin": "*", "access-control-request-method": "POST"}
    message = json.loads(cors.preflight_response(Headers(asked)).body)["error"]["message"]
    assert "no origin serve takes" not in message, message
    assert "a browser never sends *, only its page's origin, scheme://host[:port]: send the Origin of the page" in (
        message
    )
    assert "start it with --cors-origin '*')" in message, message


@pytest.mark.parametrize(("field", "number"), [("seconds", "1e400"), ("steps", "-2E+308"), ("guidance_scale", "1e309")])
def test_a_number_past_a_floats_range_is_shown_as_the_client_wrote_it(server, field, number):
    # Python's JSON parser reads 1e400 as infinity: the 400 said "got inf", a value the client never sent.
    body = f'{{"prompt": "{PROMPT}", "{field}": {number}}}'.encode()
    code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": "application/json"})
    assert code == 400 and error["error"]["param"] == field, error
    said = error["error"]["message"]
    assert said.endswith(f"got {number}") and "got inf" not in said and "got -inf" not in said, said


@pytest.mark.parametrize(
    ("loras", "shown"),
    [
        ('[{"path": "a.safetensors", "strength": 1e400}]', '{"path": "a.safetensors", "strength": 1e400}'),
        ("[1e400]", "got 1e400"),
        ('{"a.safetensors": -1e400}', 'got {"a.safetensors": -1e400}'),
    ],
)
def test_a_number_past_a_floats_range_in_loras_is_shown_as_the_client_wrote_it(server, loras, shown):
    # Inside a LoRA object (or loras' list or object) it was shown as JSON writes infinity, `Infinity`, a value the
    # client never sent.
    body = f'{{"prompt": "{PROMPT}", "loras": {loras}}}'.encode()
    code, error, _ = server.request("POST", "/v1/videos", body, {"Content-Type": "application/json"})
    said = error["error"]["message"]
    assert code == 400 and error["error"]["param"] == "loras" and shown in said and "Infinity" not in said, said


def test_an_image_of_too_many_pixels_is_told_a_size_within_them():
    # "input_reference is 400x120; the limit is 40,000 pixels" named no size to send: a copy of its shape within
    # the limit is named.
    from motif_lite.server.schema import ApiError, check_image

    with pytest.raises(ApiError) as err:
        check_image(png(400, 120, flat=True), 1 << 20, 40_000)
    message = err.value.message
    assert message.startswith("input_reference is 400x120; the limit is 40,000 pixels: send a smaller copy"), message
    width, height = map(int, re.search(r"e\.g\. (\d+)x(\d+) \(its shape", message).groups())
    assert width * height <= 40_000 and abs(width / height / (400 / 120) - 1) < 0.01 and width * height > 39_000


def test_a_job_killed_in_its_decode_goes_straight_to_the_decode_after_the_restart(pipe, tmp_path, monkeypatch):
    # The server's process killed in a job's decode (the OOM killer; no handler runs): the state the job saved
    # after its last step, before the decode, is what the restart goes on from, sampling nothing again. (Without
    # it, the job had no state and failed as interrupted, or went on from a periodic save and sampled again.)
    import shutil

    from motif_lite.pipeline import generation
    from motif_lite.server.job_record import IN_PROGRESS
    from motif_lite.server.worker import Worker

    monkeypatch.setattr(pipe, "save_final_state_after", 0.0)  # the tiny job samples in well under a minute
    store, lines = JobStore(tmp_path), []
    worker = Worker(store, pipe, lines.append)
    job = store.add(new_job_id(), "tiny", SETTINGS, False, max_active=10)
    kept, decode = tmp_path / "kept", generation.decode_video

    def copied_then_decoded(*args, **kwargs):  # what the process killed here leaves
        shutil.copy(store.state_path(job.id), kept)
        return decode(*args, **kwargs)

    monkeypatch.setattr(generation, "decode_video", copied_then_decoded)
    run_stopping_at(worker, job.id, None)
    assert store.get(job.id).status == COMPLETED
    # The process died there: the job still running, its video not written, its state as the decode began.
    store.video_path(job.id).unlink()
    shutil.copy(kept, store.state_path(job.id))
    store._db.execute("UPDATE jobs SET status = ? WHERE id = ?", (IN_PROGRESS, job.id))
    store.close()
    store = worker.store = JobStore(tmp_path)  # the server starts again
    try:
        assert store.recover().requeued == [job.id]
        forward, calls = pipe.transformer.forward, []
        monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
        run_stopping_at(worker, job.id, None)
        assert store.get(job.id).status == COMPLETED and store.video_path(job.id).is_file()
        assert calls == [] and f"{job.id}: goes on from its denoised latents (the decode only)" in lines, lines
        assert not store.state_path(job.id).exists()
    finally:
        store.close()


def test_a_second_server_on_a_data_folder_is_told_which_process_holds_it_and_what_to_do(tmp_path):
    # It said only "another motif-lite serve is using the data folder": an operator had to hunt for that process.
    first = JobStore(tmp_path)
    try:
        with pytest.raises(DataFolderBusy) as refused:
            JobStore(tmp_path)
        assert f"(process {os.getpid()})" in str(refused.value)
        assert str(refused.value).endswith("stop it first, or give --data another folder")
    finally:
        first.close()
    JobStore(tmp_path).close()  # free again, the process id it held read by no one


def test_a_second_server_is_told_the_process_of_the_server_now_holding_a_data_folder_used_before(tmp_path):
    # The lock file keeps the last server's process id after it stopped: the next server writes its own in its
    # place, not after it, or a second server would read both and name neither.
    (tmp_path / "lock").write_text("99999999\n")  # an earlier server's, stopped since
    first = JobStore(tmp_path)
    try:
        with pytest.raises(DataFolderBusy) as refused:
            JobStore(tmp_path)
        assert f"(process {os.getpid()})" in str(refused.value), refused.value
    finally:
        first.close()
