"""Files an older motif-lite wrote, read by this one: a user upgrades and goes on with last week's stopped runs, kept
latents, videos, server data folder and per-user cache. The fixtures in tests/data/old_formats/ were made by the
commits their folders name (README.md there says how); the other direction, a file of a newer motif-lite, is tested
by raising a fixture's version."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from motif_lite import cli, load_pipeline
from motif_lite.io.latents import FORMAT_KEY, FORMAT_VERSION, LatentsFileError, read_latents
from motif_lite.io.settings_file import read_settings
from motif_lite.request import GenerationRequest
from motif_lite.runtime.attention_choices import RememberedChoices
from motif_lite.server.jobs import SCHEMA_VERSION, JobStore
from motif_lite.version import VERSION

OLD = Path(__file__).parent / "data" / "old_formats"
# What tests/data/old_formats/make_api.py asked for (the denoised latents of version 1 keep no request).
REQUEST = dict(prompt="a red fox", width=64, height=64, frames=9, steps=4, seed=7)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


def copied(fixture: str, tmp_path: Path) -> Path:
    """A copy of a fixture (file or folder) to work on: readers may rewrite them."""
    source, target = OLD / fixture, tmp_path / Path(fixture).name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


# The fixtures' latents are bit for bit this version's on a CPU like the one that made them; another CPU's float32
# matmuls (AVX-512 and AMX kernels) round in other places: 1.5e-5 of the latents' std measured on a Sapphire Rapids
# Xeon. A change to the sampling (a step, the shift, the noise) moves them by 1e-2 of it and more.
SAME_LATENTS = 1e-4


def same_latents(older: torch.Tensor, now: torch.Tensor) -> bool:
    """`older` are the latents `now` are, up to another CPU's rounding (`SAME_LATENTS` of their std)."""
    return older.shape == now.shape and (older - now).abs().max().item() <= SAME_LATENTS * now.std().item()


def denoised_latents(pipe, request: GenerationRequest, monkeypatch, **generate) -> torch.Tensor:
    """The latents the run's decode receives: its decode fails, and the file it keeps holds them."""

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("simulated")

    with monkeypatch.context() as patch:
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(request, **generate)
    saved = read_latents(generate["resume"].file if "resume" in generate else _kept(request))
    assert saved.denoised
    return saved.latents


def _kept(request: GenerationRequest) -> Path:
    return Path(request.output).with_name(Path(request.output).stem + ".latents.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(pipe, tmp_path_factory) -> torch.Tensor:
    """This motif-lite's denoised latents for the fixtures' request, sampled without a stop."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        output = tmp_path_factory.mktemp("now") / "fox.mp4"
        return denoised_latents(pipe, GenerationRequest(**REQUEST, output=output), monkeypatch)
    finally:
        monkeypatch.undo()


# ------------------------------------------------------------------------------ latents files


@pytest.mark.parametrize("commit", ["3adb65b", "50ae301"])
def test_an_older_stopped_run_resumes_to_the_uninterrupted_latents(pipe, uninterrupted, commit, tmp_path, monkeypatch):
    saved = read_latents(copied(f"{commit}/stopped.latents.safetensors", tmp_path))
    assert saved.progress == (2, 4)
    request = GenerationRequest(**{**saved.request, "output": tmp_path / "fox.mp4"})
    assert same_latents(denoised_latents(pipe, request, monkeypatch, resume=saved), uninterrupted)


@pytest.mark.parametrize("commit", ["b2c4114", "3adb65b", "50ae301"])
def test_older_denoised_latents_are_this_versions(uninterrupted, commit, tmp_path):
    saved = read_latents(copied(f"{commit}/denoised.latents.safetensors", tmp_path))
    assert saved.denoised and (saved.width, saved.height, saved.frames) == (64, 64, 9)
    assert same_latents(saved.latents, uninterrupted)
    assert not same_latents(saved.latents + 1e-3 * uninterrupted.std(), uninterrupted)  # the bound bites


def test_run_resume_and_decode_go_on_from_older_files(checkpoint, tmp_path):
    # The files name the checkpoint where it was when they were made: -m gives it again.
    stopped = copied("3adb65b/stopped.latents.safetensors", tmp_path)
    args = ["-m", str(checkpoint), "--device", "cpu"]
    resume = ["run", "--resume", str(stopped), "-o", str(tmp_path / "resumed.webp"), "--kernels", "torch", "--yes"]
    assert cli.main([*resume, *args]) == 0
    assert (tmp_path / "resumed.webp").is_file() and not stopped.exists()  # done: its file removed
    version_1 = copied("b2c4114/denoised.latents.safetensors", tmp_path)
    assert cli.main(["decode", str(version_1), "-o", str(tmp_path / "decoded.webp"), *args]) == 0
    assert (tmp_path / "decoded.webp").is_file()


def newer(path: Path, change) -> Path:
    """`path` rewritten as a newer motif-lite would have saved it: `change` edits its description."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as file:
        info = json.loads(file.metadata()[FORMAT_KEY])
    change(info)
    save_file(load_file(path), str(path), metadata={FORMAT_KEY: json.dumps(info)})
    return path


def test_latents_of_a_newer_format_name_both_versions_and_say_upgrade(tmp_path):
    def from_the_future(info: dict) -> None:
        info["version"] = FORMAT_VERSION + 1
        info["video_metadata"]["version"] = "9.0.0"

    path = newer(copied("50ae301/stopped.latents.safetensors", tmp_path), from_the_future)
    with pytest.raises(LatentsFileError) as error:
        read_latents(path)
    message = str(error.value)
    assert f"saved by motif-lite 9.0.0, newer than this one ({VERSION};" in message
    assert "upgrade motif-lite" in message and "\n" not in message


def test_a_newer_file_without_the_writers_version_still_says_upgrade(tmp_path, capsys):
    def from_the_future(info: dict) -> None:
        info["version"] = FORMAT_VERSION + 1
        info["video_metadata"] = {}

    path = newer(copied("50ae301/stopped.latents.safetensors", tmp_path), from_the_future)
    assert cli.main(["run", "--resume", str(path), "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert "saved by another motif-lite, newer than this one" in err and "upgrade motif-lite" in err
    assert "Traceback" not in err

    def without_metadata(info: dict) -> None:  # a newer format may keep the video's metadata elsewhere
        info["version"] = FORMAT_VERSION + 1
        del info["video_metadata"]

    (tmp_path / "again").mkdir()
    path = newer(copied("50ae301/stopped.latents.safetensors", tmp_path / "again"), without_metadata)
    with pytest.raises(LatentsFileError, match="saved by another motif-lite, newer than this one"):
        read_latents(path)


# ------------------------------------------------------------------------------ videos: --settings-from


@pytest.mark.parametrize("commit", ["b2c4114", "50ae301"])
def test_settings_from_reads_an_older_video(commit):
    stored = read_settings(OLD / commit / "fox.mp4")
    values = stored.values
    assert (values["prompt"], values["seed"], values["sampler"], values["steps"]) == ("a red fox", 7, "dpm++2m", 2)
    assert (values["width"], values["height"], values["frames"]) == (64, 64, 9)


def test_run_settings_from_an_older_video_plans_its_settings(checkpoint, tmp_path, capsys):
    video = copied("b2c4114/fox.mp4", tmp_path)
    command = ["run", "--settings-from", str(video), "-m", str(checkpoint), "-o", str(tmp_path / "again.webp")]
    assert cli.main([*command, "--device", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "sampler      file       dpm++2m" in out.out and "seed 7" in out.err


# ------------------------------------------------------------------------------ the server's data folder


@pytest.mark.parametrize("commit", ["b2c4114", "3adb65b", "50ae301"])
def test_the_server_lists_and_serves_an_older_data_folders_jobs(pipe, commit, tmp_path):
    from server_helpers import InProcessServer

    data = copied(f"{commit}/serve-data", tmp_path)
    (video,) = (data / "videos").glob("*.mp4")
    with InProcessServer(pipe, data) as server:
        status, listing, _ = server.request("GET", "/v1/videos")
        assert status == 200
        (job,) = listing["data"]
        assert (job["id"], job["status"], job["prompt"]) == (video.stem, "completed", "a red fox")
        status, body, _ = server.request("GET", f"/v1/videos/{video.stem}/content")
        assert status == 200 and body == video.read_bytes()
    database = sqlite3.connect(data / "jobs.sqlite3")
    assert database.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # upgraded in place
    database.close()


def test_a_data_folder_of_a_newer_motif_lite_names_this_version(tmp_path):
    data = copied("50ae301/serve-data", tmp_path)
    database = sqlite3.connect(data / "jobs.sqlite3")
    database.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    database.close()
    with pytest.raises(Exception, match=f"newer motif-lite .*this one, motif-lite {VERSION}, .*: upgrade motif-lite"):
        JobStore(data)


# ------------------------------------------------------------------------------ the per-user cache


def test_an_older_attention_choice_is_taken_again():
    environment, choices = json.loads((OLD / "b2c4114" / "attention-choices.json").read_text()).popitem()
    (shape, name), = choices.items()  # fmt: skip
    assert RememberedChoices(environment, OLD / "b2c4114" / "attention-choices.json").get(shape) == name == "cudnn"


def _queued_then_restarted(tmp_path, twice_loras: list, config) -> str:
    """Queue a job whose `twice_loras` name one file twice and one naming each file once, restart the server's store
    under `config`; -> the refusal the job naming the file twice got (and logged). The other job waits its turn."""
    from motif_lite.server.job_record import FAILED, QUEUED
    from motif_lite.server.runner import VideoServer

    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    twice, once = "video_" + "1" * 32, "video_" + "2" * 32
    store = JobStore(tmp_path / "data")
    try:
        store.add(twice, "m", settings, False, 10, loras=twice_loras)
        store.add(once, "m", settings, False, 10, loras=[("a.safetensors", 0.5), ("b.safetensors", 1)])
    finally:
        store.close()
    log: list[str] = []
    store = VideoServer(JobStore(tmp_path / "data"), config, log.append).store  # restarted
    try:
        refused = store.get(twice)
        assert (refused.status, refused.error_code) == (FAILED, "invalid_request")
        assert store.get(once).status == QUEUED  # each file once: it waits its turn
        assert log == [f"{twice}: failed: {refused.error_message}"]
        return refused.error_message
    finally:
        store.close()


def test_a_queued_job_of_an_older_motif_lite_naming_a_lora_twice_fails_as_the_queue_is_read(tmp_path):
    # A job that named one LoRA file twice, queued by a motif-lite that took it, stayed queued after the upgrade and
    # failed only as its turn came, told that the server had changed since it was queued.
    from motif_lite.server.app import ServerConfig

    loras = [("a.safetensors", 0.5), ("b.safetensors", 1), ("a.safetensors", 0.25)]
    why = _queued_then_restarted(tmp_path, loras, ServerConfig(model_name="tiny"))
    assert why == (
        "its loras name 'a.safetensors' twice, which would apply twice (at 0.5 + 0.25): the motif-lite that "
        "queued it took that, this one refuses it; submit it again and name it once with the summed strength, "
        '{"name": "a.safetensors", "strength": 0.75}'
    )


def test_a_finished_job_of_an_older_motif_lite_naming_a_lora_twice_is_left_as_it_ended(tmp_path):
    # Only a queued job is refused as the stored queue is read: one that completed (its video made) or failed with
    # the older motif-lite keeps its status and its own error, rather than being failed again over its LoRAs.
    from motif_lite.server.job_record import COMPLETED, FAILED

    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    made, failed = "video_" + "3" * 32, "video_" + "4" * 32
    store = JobStore(tmp_path / "data")
    try:
        for job_id in (made, failed):
            store.add(job_id, "m", settings, False, 10, loras=[("a.safetensors", 0.5), ("a.safetensors", 0.25)])
        store.finish(store.claim_next().id)
        store.finish(store.claim_next().id, ("out_of_memory", "the GPU ran out of memory"))
    finally:
        store.close()
    store = JobStore(tmp_path / "data")
    try:
        assert store.recover().refused == []
        assert store.get(made).status == COMPLETED
        ended = store.get(failed)
        assert (ended.status, ended.error_code, ended.error_message) == (
            FAILED,
            "out_of_memory",
            "the GPU ran out of memory",
        )
    finally:
        store.close()


def test_a_queued_job_naming_one_lora_by_a_name_and_a_link_fails_as_the_queue_is_read(tmp_path):
    # A job naming a file and a link to it (queued by a motif-lite that compared the names' text, or before the
    # link was made) stayed queued and failed only as its turn came.
    from motif_lite.server.app import ServerConfig

    folder = tmp_path / "loras"
    folder.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        (folder / name).write_bytes(b"a LoRA")
    (folder / "link.safetensors").symlink_to("a.safetensors")
    loras = [("a.safetensors", 0.5), ("link.safetensors", 0.25)]
    why = _queued_then_restarted(tmp_path, loras, ServerConfig(model_name="tiny", lora_dir=folder))
    assert why == (
        "its loras name 'a.safetensors' and 'link.safetensors', one file of this server's LoRA folder (one name "
        "is a link to the other), which would apply twice (at 0.5 + 0.25): submit it again and name it once "
        'with the summed strength, {"name": "a.safetensors", "strength": 0.75}'
    )


def test_a_queued_job_naming_a_lora_three_times_is_told_every_one_of_them(tmp_path):
    # Without a LoRA folder, names are compared by their text: each of the three entries of the repeated file is
    # counted, and the summed strength is of all three, not of the first two.
    from motif_lite.server.job_record import FAILED

    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    thrice = "video_" + "7" * 32
    store = JobStore(tmp_path / "data")
    try:
        loras = [("a.safetensors", 0.5), ("a.safetensors", 0.25), ("b.safetensors", 1), ("a.safetensors", 0.125)]
        store.add(thrice, "m", settings, False, 10, loras=loras)
    finally:
        store.close()
    store = JobStore(tmp_path / "data")  # restarted
    try:
        [(job_id, why)] = store.recover().refused
        assert job_id == thrice and store.get(thrice).status == FAILED
        assert why.startswith("its loras name 'a.safetensors' 3 times, which would apply 3 times (at 0.5 + 0.25 + "
                              "0.125)"), why  # fmt: skip
        assert why.endswith('{"name": "a.safetensors", "strength": 0.875}'), why
    finally:
        store.close()


def test_a_queued_job_naming_a_lora_by_a_name_a_link_and_the_name_again_names_all_three(tmp_path):
    # Each of the names of the one file is said where it comes, the first name again too, as the refusal of a
    # body sending them says them.
    from motif_lite.server.job_record import FAILED

    folder = tmp_path / "loras"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(b"a LoRA")
    (folder / "link.safetensors").symlink_to("a.safetensors")
    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    thrice = "video_" + "8" * 32
    store = JobStore(tmp_path / "data")
    try:
        loras = [("a.safetensors", 0.5), ("link.safetensors", 0.25), ("a.safetensors", 0.25)]
        store.add(thrice, "m", settings, False, 10, loras=loras)
    finally:
        store.close()
    store = JobStore(tmp_path / "data")  # restarted
    try:
        [(job_id, why)] = store.recover(folder).refused
        assert job_id == thrice and store.get(thrice).status == FAILED
        assert why.startswith(
            "its loras name 'a.safetensors', 'link.safetensors' and 'a.safetensors', one file of this server's LoRA "
            "folder (one name is a link to the other), which would apply 3 times (at 0.5 + 0.25 + 0.25)"
        ), why
    finally:
        store.close()


def test_a_queued_job_naming_two_links_out_of_the_lora_folder_to_one_file_is_left_to_their_refusal(tmp_path):
    # Two names that lead out of the LoRA folder to one file were failed at restart as "one file of this server's
    # LoRA folder (one name is a link to the other)": neither is a file of the folder, and each is refused as none
    # at the job's turn ("no LoRA file ..."), as `lora_files` checks that before it compares two names.
    from motif_lite.server.job_record import QUEUED
    from motif_lite.server.loras import lora_files
    from motif_lite.server.schema import ApiError

    folder, elsewhere = tmp_path / "loras", tmp_path / "elsewhere.safetensors"
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(b"a LoRA")
    elsewhere.write_bytes(b"not the operator's LoRA")
    for name in ("out.safetensors", "out2.safetensors"):
        (folder / name).symlink_to(elsewhere)
    loras = [("out.safetensors", 0.5), ("out2.safetensors", 0.25)]
    missing = [("gone.safetensors", 0.5), ("gone.safetensors", 0.25)]  # a name no file of the folder, likewise
    settings = {"prompt": "a red fox", "width": 64, "height": 64, "frames": 9, "fps": 24}
    jobs = {"video_" + "9" * 32: loras, "video_" + "a" * 32: missing}
    store = JobStore(tmp_path / "data")
    try:
        for job, named in jobs.items():
            store.add(job, "m", settings, False, 10, loras=named)
    finally:
        store.close()
    store = JobStore(tmp_path / "data")  # restarted
    try:
        assert store.recover(folder).refused == [] and all(store.get(job).status == QUEUED for job in jobs)
    finally:
        store.close()
    for named in jobs.values():
        with pytest.raises(ApiError) as refused:
            lora_files(named, folder)
        assert f"no LoRA file {named[0][0]!r} in this server's LoRA folder" in str(refused.value)
