"""Damaged and hand-edited latents files (`run --resume`, `motif-lite decode`): every mutation of a saved file, a
fixed list of them (bytes cut or flipped, each description entry of the wrong JSON type, tensors of another shape
or dtype), is either read as it is or refused with `MotifLiteError`; the commands say so in one line. CPU."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from fuzz_checks import read_or_refused_naming, unnamed
from safetensors.torch import save_file

from motif_lite import cli
from motif_lite.cli.resume import request_from_file, resume_args, resumed_request
from motif_lite.errors import MotifLiteError
from motif_lite.io.latents import FORMAT_KEY, STATE_PREFIX, TENSOR_NAME, SavedLatents, read_latents, save_latents
from motif_lite.io.model_stamps import MODEL_FLAG_GROUPS
from motif_lite.request import GenerationRequest

LATENT_SHAPE = (1, 16, 2, 4, 4)
# What a stopped run of a 32x32, 5-frame video keeps (as `SavedLatents.info` writes it), its folders made up.
REQUEST = {
    "prompt": "a red fox",
    "negative_prompt": "blurry",
    "width": 32,
    "height": 32,
    "frames": 5,
    "fps": 24.0,
    "steps": 3,
    "guidance": None,
    "cfg_scale": None,
    "apg_eta": None,
    "apg_norm_threshold": None,
    "apg_momentum": None,
    "flow_shift": None,
    "sampler": None,
    "seed": 3,
    "image": None,
    "extend": None,
}
RUN = {"dtype": "fp32", "attention": "exact", "lora": [], "model": "Org/Motif-Video-2B", "gguf": None,
       "text_encoder_gguf": None, "diffusion_model": None, "text_encoder": None, "vae": None, "file_stamps": {},
       "image_sha256": None, "clip_sha256": None}  # fmt: skip
METADATA = {"software": "motif-lite", "version": "0.1.0", "model": {"dtype": "fp32", "model": "Motif-Video-2B",
            "lora": []}, **REQUEST}  # fmt: skip

# Values of each wrong JSON type a hand edit may leave, and a missing entry.
MISSING = object()
WRONG_VALUES = ["12", [1], None, float("nan"), float("inf"), 10**30, -5, 0, True, {"a": 1}, "x" * 100_000, "\udcff",
                1.5, MISSING]  # fmt: skip


def stopped(folder: Path) -> SavedLatents:
    return SavedLatents(torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(0)), folder / "fox.mp4", 32,
                        32, 5, 24.0, "float32", METADATA, "Org/Motif-Video-2B", progress=(1, 3),
                        state={"apg_running": torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(1))},
                        request={**REQUEST, "output": str(folder / "fox.mp4")}, run=RUN)  # fmt: skip


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_latents(stopped(tmp_path), tmp_path / "fox.latents.safetensors")


def entries(info: dict) -> list[str]:
    """Where a hand edit may change the description: each entry, and each of its request, run and metadata."""
    nested = [f"{key}.{inner}" for key in ("request", "run") for inner in info[key]]
    return [*info, *nested, "progress.0", "progress.1", "video_metadata.model", "video_metadata.model.lora"]


INFO = json.loads(json.dumps(stopped(Path("/nowhere")).info()))


def edited(info: dict, where: str, value: object) -> dict:
    """`info` with the entry at `where` ("run.vae", "progress.0") set to `value`, or left out (`MISSING`)."""
    info = copy.deepcopy(info)
    *outer, last = where.split(".")
    inner = info
    for key in outer:
        inner = inner[int(key)] if isinstance(inner, list) else inner[key]
    if value is MISSING and isinstance(inner, dict):
        inner.pop(last, None)
    elif value is not MISSING:
        inner[int(last) if isinstance(inner, list) else last] = value
    return info


def rewritten(path: Path, info: dict, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    if tensors is None:
        tensors = {TENSOR_NAME: torch.zeros(LATENT_SHAPE), STATE_PREFIX + "apg_running": torch.zeros(LATENT_SHAPE)}
    save_file(tensors, str(path), metadata={FORMAT_KEY: json.dumps(info)})
    return path


def read_and_resume(path: Path) -> tuple[dict, GenerationRequest]:
    """What `run --resume` does with the file before loading anything: read, check, take its flags and request,
    resolve it; what it took (each request field, model flag and what the file says of the video) for comparing.
    The checkpoint, VAE, clip and output at the top level are `decode`'s, which `--resume` does not read
    (docs/usage.md, "When a run stops"): an edit of those reads as the unedited run."""
    args = cli.build_parser().parse_args(["run", "--resume", str(path)])
    args.argv = ["run", "--resume", str(path)]  # which flags were given, as `cli.main` keeps it
    saved, _ = resume_args(args)
    request = resumed_request(saved, str(path.with_name("again.mp4")))
    with request_from_file(saved):
        request.resolve()
    flags = {f"run.{dest}": getattr(args, dest) for group in MODEL_FLAG_GROUPS for dest in group}
    video = {key: getattr(saved, key) for key in ("width", "height", "frames", "fps", "dtype", "progress")}
    fields = {f"request.{name}": value for name, value in dataclasses.asdict(request).items()}
    return {**fields, **flags, "step_cache": args.step_cache, **video}, request


def assert_refused_or_read(path: Path, where: str, value: object, unedited: tuple[dict, GenerationRequest]) -> None:
    """A refusal names the file and the entry (or its flag); a read resumes the unedited run, or a request field
    or model flag holds the edited value, as if given by its flag (and resolved as a new run's)."""
    try:
        resumed, request = read_and_resume(path)
    except MotifLiteError as exc:
        key = next(part for part in reversed(where.split(".")) if not part.isdigit())
        assert not unnamed(str(exc), path.name, key), f"{where}={value!r:.40}: {exc}"  # key or its flag
        return
    changed = [key for key in resumed if resumed[key] != unedited[0][key]]
    if not changed:
        return
    if where == "progress.0":  # a stopped run can be resumed from any step done
        assert changed == ["progress"] and resumed["progress"][0] == value
        return
    assert changed == [where] and resumed[where] == value, f"{where}={value!r:.40} read as {changed}"


@pytest.mark.parametrize("where", entries(INFO))
def test_every_wrong_entry_in_the_description_is_refused_or_read(saved, where):
    info = json.loads(json.dumps(read_latents(saved).info()))
    unedited = read_and_resume(saved)
    for value in WRONG_VALUES:
        rewritten(saved, edited(info, where, value))
        assert_refused_or_read(saved, where, value, unedited)


def test_a_path_entry_of_100_kb_is_refused_naming_the_entry(saved):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, "run.vae", "x" * 100_000))
    with pytest.raises(MotifLiteError, match=r"description's run.vae is 'xxx.*edited or damaged"):
        read_latents(saved)


@pytest.mark.parametrize(("where", "value"), [("request", "12"), ("run.lora", [1]), ("video_metadata.model", None),
                                              ("width", float("inf")), ("progress", [3, 1]),
                                              # read silently before: decode and --resume would disagree, a
                                              # missing entry became the default, a dtype no decode takes
                                              ("width", 10**30), ("fps", 12.0), ("progress", [1, 10**30]),
                                              ("dtype", "12"), ("run.model", MISSING),
                                              ("request.negative_prompt", MISSING)])  # fmt: skip
def test_a_wrong_entry_is_named(saved, where, value):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, where, value))
    with pytest.raises(MotifLiteError, match=f"description's {where} is"):
        read_latents(saved)


@pytest.mark.parametrize("method", [[1], {"a": 1}, 3, True, None])
def test_a_stored_guidance_method_of_another_json_type_is_refused_before_loading(saved, method):
    """Damage, as in a video's settings (`run --settings-from`): before, it was refused only once the model had
    loaded, as the request's guidance differing from the file's."""
    info = json.loads(json.dumps(read_latents(saved).info()))
    info["video_metadata"]["guidance_config"] = {"method": method, "scale": 4.0}
    rewritten(saved, info)
    with pytest.raises(MotifLiteError, match=r"video_metadata\.guidance_config\.method is .*, not a guidance method"):
        read_and_resume(saved)
    info["video_metadata"]["guidance_config"]["method"] = "PAGConfig"  # a newer version's: its request decides
    rewritten(saved, info)
    read_and_resume(saved)


@pytest.mark.parametrize("stored", [[1], 3, "APGConfig", True])
def test_a_stored_guidance_config_that_is_no_object_is_refused_before_loading(saved, stored):
    """It was read as no guidance config, and the request's guidance ran without a word (as in a video's
    settings)."""
    info = json.loads(json.dumps(read_latents(saved).info()))
    info["video_metadata"]["guidance_config"] = stored
    rewritten(saved, info)
    said = r"video_metadata\.guidance_config is .*, not an object of guidance settings or null \(the file was edited"
    with pytest.raises(MotifLiteError, match=said):
        read_and_resume(saved)


@pytest.mark.parametrize(("where", "value"), [("request.cfg_scale", "12"), ("request.extend", "12"),
                                                      ("progress", None)])  # fmt: skip
def test_a_resume_refusing_an_edited_entry_names_the_file_and_entry(saved, where, value):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, where, value))
    with pytest.raises(MotifLiteError) as refused:
        read_and_resume(saved)
    key = where.rpartition(".")[2]
    assert saved.name in str(refused.value) and key.replace("_", "-") in str(refused.value)


def test_cut_and_flipped_bytes_are_refused_or_read(saved):
    """Refused naming the file, or read as the whole file (its description, latents and sampling state). The
    unedited tensors are copies: those read are views of the file, which each damaged copy overwrites in place
    (a reader that read a cut-short tail as zeros passed, the unedited latents having turned to zeros too)."""
    unedited = read_latents(saved)
    tensors = {"latents": unedited.latents.clone(), **{name: t.clone() for name, t in unedited.state.items()}}
    whole = saved.read_bytes()
    header_end = 8 + int.from_bytes(whole[:8], "little")
    cuts = [whole[:n] for n in (0, 1, 7, 8, 20, header_end // 2, header_end, header_end + 1, len(whole) - 1)]
    flips = [whole[:i] + bytes([whole[i] ^ 0xFF]) + whole[i + 1 :] for i in range(0, header_end, 7)]
    huge = (2**62).to_bytes(8, "little") + whole[8:]
    for damaged in [*cuts, *flips, huge]:
        saved.write_bytes(damaged)
        with read_or_refused_naming(MotifLiteError, saved.name):
            read = read_latents(saved)
            assert read.info() == unedited.info()
            read_tensors = {"latents": read.latents, **read.state}
            assert read_tensors.keys() == tensors.keys()
            differ = [name for name, tensor in tensors.items() if not torch.equal(read_tensors[name], tensor)]
            assert not differ, f"{len(damaged)} bytes read with other {differ}"


@pytest.mark.parametrize(
    ("latents", "says"),
    [
        (torch.zeros(16, 2, 4, 4), "not floats of shape [1, C, F, h, w]"),
        (torch.zeros(LATENT_SHAPE, dtype=torch.int32), "torch.int32"),
        (torch.full(LATENT_SHAPE, float("nan")), "inf or NaN"),
    ],
)
def test_latents_no_run_saves_are_refused(saved, latents, says):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, info, {TENSOR_NAME: latents})
    with pytest.raises(MotifLiteError) as raised:
        read_latents(saved)
    assert says in str(raised.value) and "the file is damaged" in str(raised.value)


@pytest.mark.parametrize("command", [["run", "--resume"], ["decode"]])
def test_the_commands_refuse_a_damaged_file_in_one_line(saved, capsys, command):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, "request", [1]))
    code = cli.main([*command, str(saved), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert "description's request is [1]" in err
    assert saved.is_file()  # kept as it is: the user may copy it again


# ------------------------------------------------------------------------------ the sampling state's tensors


def stopped_after_the_first_step(pipe, folder: Path):
    """A run of REQUEST stopped (Ctrl-C) after its first step: (its request, its saved latents file, that file read)."""
    from motif_lite.request import GenerationRequest

    def stop_after_the_first_step(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    request = GenerationRequest(**{**REQUEST, "output": str(folder / "fox.mp4")})
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request, on_progress=stop_after_the_first_step)
    path = folder / "fox.latents.safetensors"
    return request, path, read_latents(path)


@pytest.fixture(scope="module")
def pipe(checkpoint):
    from motif_lite import load_pipeline

    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.mark.parametrize(
    "state",
    [
        torch.zeros(1, 16, 3, 4, 4),  # another shape
        torch.zeros(0),  # no values at all
        torch.zeros(LATENT_SHAPE, dtype=torch.int64),
        torch.zeros(LATENT_SHAPE, dtype=torch.bool),
    ],
)
def test_a_damaged_sampling_state_is_refused_before_any_step(pipe, tmp_path, state):
    request, path, good = stopped_after_the_first_step(pipe, tmp_path)
    rewritten(path, json.loads(json.dumps(good.info())), {TENSOR_NAME: good.latents, "state.apg_running": state})
    with pytest.raises(MotifLiteError, match="its sampling state 'apg_running' is .* the file is damaged"):
        pipe.generate(request, resume=read_latents(path))
    assert path.is_file()


# ------------------------------------------------------------------------------ each check of the description


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("clip", [1]),
        ("request.output", None),
        ("run.clip_sha256", 5),
        ("run.quantize", 5),
        ("run.text_encoder_quantize", 5),
        ("dtype", ""),
        ("output", "/videos/" + "x" * 300 + "/fox.mp4"),  # a long folder, not only a long first part
        ("output", "/videos/" + "x" * 256),
        ("output", "/videos/" + "é" * 200),  # 200 characters, 400 bytes
        ("width", True),
        ("frames", 0),
        ("fps", 0),
        ("fps", float("inf")),
        ("progress", [1, 2, 3]),
        ("progress", [-1, 3]),
        ("progress", [True, 3]),
        ("progress", [0, 0]),
    ],
)
def test_each_kind_of_wrong_entry_is_named(saved, where, value):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, where, value))
    with pytest.raises(MotifLiteError, match=f"description's {where} is"):
        read_latents(saved)


@pytest.mark.parametrize(("where", "value"), [("output", "/videos/" + "x" * 255), ("progress", [3, 3])])
def test_entries_at_their_limits_are_read(saved, where, value):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, where, value))
    read_latents(saved)


def test_a_long_wrong_entry_is_cut_short_in_the_message(saved):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(info, "run.vae", "x" * 100_000))
    with pytest.raises(MotifLiteError) as raised:
        read_latents(saved)
    assert len(str(raised.value)) < 400


def test_latents_with_one_nan_are_refused(saved):
    latents = torch.zeros(LATENT_SHAPE)
    latents[0, 3, 1, 2, 2] = float("nan")
    rewritten(saved, json.loads(json.dumps(read_latents(saved).info())), {TENSOR_NAME: latents})
    with pytest.raises(MotifLiteError, match="inf or NaN"):
        read_latents(saved)


def test_latents_another_model_sampled_are_refused_before_any_step(pipe, tmp_path):
    # A file of a model with other latent channels (its description says nothing of them): a one-line error, where
    # the first step failed with a shape mismatch deep in the transformer.
    request, path, good = stopped_after_the_first_step(pipe, tmp_path)
    other = torch.zeros(good.latents.shape[0], good.latents.shape[1] * 2, *good.latents.shape[2:])
    rewritten(path, json.loads(json.dumps(good.info())), {TENSOR_NAME: other})
    with pytest.raises(MotifLiteError, match="this model samples .* they come from another model"):
        pipe.generate(request, resume=read_latents(path))


def test_a_sigma_saved_as_one_number_is_taken(tmp_path):
    from dataclasses import replace

    from motif_lite.pipeline.resuming import _check_state_tensors

    state = {"solver.sigma": torch.tensor(0.5), "apg_running": torch.zeros(LATENT_SHAPE)}
    resume = replace(stopped(tmp_path), state=state)
    _check_state_tensors(resume, LATENT_SHAPE)  # no error


def test_of_two_wrong_entries_the_first_is_named(saved):
    info = json.loads(json.dumps(read_latents(saved).info()))
    rewritten(saved, edited(edited(info, "width", float("inf")), "progress", [3, 1]))
    with pytest.raises(MotifLiteError, match="description's width is"):
        read_latents(saved)
