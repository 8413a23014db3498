"""Behaviour the docs promise that no other test checked, found by reading README.md and docs/*.md against the
tests. Each test names the doc line it backs."""

from __future__ import annotations

import dataclasses
import io
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open as _REAL_SAFE_OPEN  # the real one while _WeightReads replaces every import

from motif_lite import cli


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


class Reached(Exception):
    """Raised by the stand-in for load_pipeline: the command got as far as loading."""


@pytest.fixture
def tesla_t4(checkpoint, monkeypatch):
    """Every check passes on a CUDA device that is a Tesla T4 (compute capability 7.5: no bf16 tensor cores), and
    loading the weights ends the command."""
    from motif_lite import devices
    from motif_lite import preflight as checks
    from motif_lite.checkpoint import locate_sources
    from motif_lite.pipeline import loading as loader

    def found(*args, **kwargs):
        return locate_sources(checkpoint), torch.device("cuda")

    monkeypatch.setattr(checks, "preflight", found)
    monkeypatch.setattr(loader, "preflight", found)  # load_pipeline's own checks, which end in the dtype advice
    monkeypatch.setattr(devices, "resolve_device", lambda device: torch.device("cuda"))  # serve's, before serving
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")

    def loading(*args, **kwargs):  # load_pipeline's last check before it reads a weight file
        raise Reached

    monkeypatch.setattr(loader, "check_loras", loading)
    return checkpoint


TINY_RUN = ("-W", "64", "-H", "64", "--video-frames", "9", "--steps", "2", "--device", "cuda", "--vram", "8")


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
@pytest.mark.parametrize("dtype", ["bf16", "fp16", None])
def test_run_tells_a_gpu_before_ampere_to_use_fp16_before_loading(tesla_t4, tmp_path, capsys, dtype):
    # docs/usage.md, "GPUs before Ampere": `run` and `serve` say so when bf16 is asked for on such a GPU, before
    # anything loads; without --dtype it gets fp16 and nothing needs saying.
    args = ["run", "-m", str(tesla_t4), "-p", "a fox", "-o", str(tmp_path / "fox.mp4")]
    with pytest.raises(Reached):
        cli.main([*args, *(["--dtype", dtype] if dtype else []), *TINY_RUN])
    err = capsys.readouterr().err
    advice = "Tesla T4 (compute capability 7.5) has no bfloat16 tensor cores"
    assert err.count(advice) == (dtype == "bf16") and ("--dtype fp16" in err) == (dtype == "bf16"), err


@pytest.mark.parametrize(("dtype", "planned"), [(None, torch.float16), ("bf16", torch.bfloat16)])
def test_run_plans_in_fp16_on_a_gpu_before_ampere_unless_told(tesla_t4, tmp_path, monkeypatch, dtype, planned):
    # docs/usage.md, the --dtype row: fp16 is the default there, and the plan is made for the dtype that loads.
    from motif_lite import memory_plan

    seen = []
    plan_generation = memory_plan.plan_generation
    monkeypatch.setattr(
        memory_plan, "plan_generation", lambda *a, **kw: seen.append(kw["dtype"]) or plan_generation(*a, **kw)
    )
    args = ["run", "-m", str(tesla_t4), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), *TINY_RUN]
    with pytest.raises(Reached):
        cli.main([*args, *(["--dtype", dtype] if dtype else [])])
    assert seen == [planned]


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
@pytest.mark.parametrize("dtype", ["bf16", None])
def test_serve_tells_a_gpu_before_ampere_to_use_fp16_before_loading(tesla_t4, tmp_path, capsys, dtype):
    pytest.importorskip("fastapi")
    args = ["serve", "-m", str(tesla_t4), "--data", str(tmp_path / "data"), "--port", "0"]
    with pytest.raises(Reached):
        cli.main(
            [*args, "--device", "cuda", "--vram", "8", "--max-video", "64x64x9", *(["--dtype", dtype] if dtype else [])]
        )
    err = capsys.readouterr().err
    advice = "Tesla T4 (compute capability 7.5) has no bfloat16 tensor cores"
    assert err.count(advice) == (dtype == "bf16") and ("--dtype fp16" in err) == (dtype == "bf16"), err


def test_a_run_over_its_ram_budget_is_refused_before_anything_loads(checkpoint, tmp_path, capsys, monkeypatch):
    # README.md, "Host RAM": `--ram GiB` refuses a run that would not fit before anything loads (a real run, not
    # only the dry run that tests/test_cli.py checks).
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded before refusing"))
    args = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    assert cli.main([*args, "-W", "64", "-H", "64", "--video-frames", "9", "--ram", "0.1"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "GiB of host memory, but --ram is 0.10 GiB" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_the_recipe_table_of_docs_quantize_is_the_quantizers():
    # docs/quantize.md, "Recipes (`--type`)": each row's type per tensor class is the one get_recipe gives, and its
    # size and bits per weight those of the file the recipe makes of the 2.04B transformer (Q5_K_S said 1.45 GB for
    # 1,444,856,576 bytes); so are the sizes of the recipes the line below the table lists.
    from motif_lite.config import TransformerConfig
    from motif_lite.quantize import get_recipe
    from motif_lite.sizes import estimated_gguf_bytes, transformer_weights

    text = (Path(__file__).resolve().parent.parent / "docs/quantize.md").read_text()
    rows = re.findall(
        r"^\| (Q\w+) \| (Q\w+) \| (Q\w+) \| (Q\w+) \| (Q\w+) \| (Q\w+) \| ([\d.]+) GB \| ([\d.]+) \|$", text, re.M
    )
    assert len(rows) == 10, rows
    weights = transformer_weights(TransformerConfig())
    for name, *types, size, bits in rows:
        recipe = get_recipe(name)
        classes = [recipe.base, recipe.sensitive, recipe.modulation, recipe.edge, recipe.embed]
        assert [t.name for t in classes] == types, name
        packed, _ = estimated_gguf_bytes(TransformerConfig(), name)
        assert (f"{packed / 1e9:.2f}", f"{8 * packed / weights:.2f}") == (size, bits), name
    others = re.findall(r"`(Q\w+)` \(([\d.]+) GB\)", text.split("|\n\nAlso ", 1)[1].split("\n\n")[0])
    assert len(others) == 4, others
    for name, size in others:
        assert f"{estimated_gguf_bytes(TransformerConfig(), name)[0] / 1e9:.2f}" == size, name


USAGE = Path(__file__).resolve().parent.parent / "docs/usage.md"


def test_plan_generation_is_imported_from_preflight_as_docs_usage_and_the_messages_write_it():
    # docs/usage.md ("In a notebook") and the messages that suggest a plan name `motif_lite.preflight`; the memory
    # plan moved to memory_plan.py, and that import still gives its `plan_generation`.
    from motif_lite import memory_plan

    line = "from motif_lite.preflight import plan_generation"
    assert line in USAGE.read_text()
    names: dict = {}
    exec(line, names)
    assert names["plan_generation"] is memory_plan.plan_generation


def documented_flags(page: Path, heading: str) -> set[str]:
    """The flags named in the first cells of the table under `heading`."""
    section = page.read_text().split(heading + "\n")[1].split("\n## ")[0]
    first_cells = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    return set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", " ".join(first_cells)))


def test_every_flag_of_run_has_a_row_in_the_flags_table_of_docs_usage():
    # docs/usage.md, "Flags of `motif-lite run`": the table lists every flag the command takes.
    import argparse

    from motif_lite.cli.run_flags import add_run_flags

    parser = argparse.ArgumentParser(add_help=False)
    add_run_flags(parser)
    flags = {name for action in parser._actions for name in action.option_strings}
    assert sorted(flags - documented_flags(USAGE, "## Flags of `motif-lite run`")) == []


def test_every_flag_of_serve_has_a_row_in_the_flags_table_of_docs_server():
    # docs/server.md, "Flags": the table lists every flag `motif-lite serve` takes (--no-batch-guidance was missing).
    import argparse

    (commands,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    shown = [action for action in commands.choices["serve"]._actions if action.help != argparse.SUPPRESS]
    flags = {name for action in shown for name in action.option_strings} - {"-h", "--help"}
    assert sorted(flags - documented_flags(SERVER, "## Flags")) == []


def test_every_flag_docs_server_names_is_one_of_motif_lites():
    # docs/server.md named --max-image-pixels, which no command takes (the image size limit is fixed: 40 megapixels).
    import argparse

    def flags_of(parser: argparse.ArgumentParser) -> set[str]:
        found = set()
        for action in parser._actions:
            found |= set(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                found = found.union(*(flags_of(command) for command in action.choices.values()))
        return found

    named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", SERVER.read_text()))
    others = {"--env-file"}  # docker run's
    assert sorted(named - others - flags_of(cli.build_parser())) == []


def test_what_the_image_to_video_plan_of_a_server_adds_is_what_docs_server_says(monkeypatch):
    # docs/server.md, "Flags", --max-video: a server that takes images plans its largest job as image-to-video.
    from motif_lite.cli.prepare import planned_run, sources_before_download
    from motif_lite.cli.serve_loading import largest_job
    from motif_lite.request import GenerationRequest
    from motif_lite.units import memory_size

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # --vram as given, on any machine
    said = []
    for vram, video in (("1000", (1280, 736, 121)), ("4", (1280, 736, 121)), ("1000", (832, 480, 49))):
        args = cli.build_parser().parse_args(["serve", "--gguf", "Q4_K_M", "--vram", vram, "--device", "cuda"])
        args.weights = {}  # as serve's main sets it
        sources = sources_before_download(args)  # the official model's configs: it takes images
        image_to_video = largest_job(sources, video)
        assert image_to_video.conditions_on_image
        text_to_video = GenerationRequest("-", width=video[0], height=video[1], frames=video[2])
        text, image = (
            planned_run(args, request, sources, torch.bfloat16, torch.device("cuda")).plan().peak_bytes
            for request in (text_to_video, image_to_video)
        )
        said.append((f"{(image - text) / 2**20:.1f} MiB", memory_size(text), memory_size(image)))
    (resident, text, image), (streamed, _, fits), (encoded, small, small_image) = said
    doc = " ".join(SERVER.read_text().split())
    assert f"add {resident} to the 1280x736x121 estimate" in doc and f"({text.removesuffix(' GiB')} to {image})" in doc
    assert f"{streamed} with `--vram 4` ({fits})" in doc
    # At 832x480x49 the encode stage is the peak: the SigLIP tower's pass over the first frame is what it adds.
    assert f"{encoded} to 832x480x49's ({small.removesuffix(' GiB')} to {small_image}:" in doc


def test_the_official_negative_prompt_quoted_in_docs_usage_is_the_default():
    # docs/usage.md, "Dry runs": "Official negative prompt (default of `-n`): *...*".
    from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT

    quoted = re.search(r"Official negative prompt \(default of `-n`\): \*(.*?)\*", USAGE.read_text(), re.S)
    assert " ".join(quoted.group(1).split()).removesuffix(".") == OFFICIAL_NEGATIVE_PROMPT


SERVER = Path(__file__).resolve().parent.parent / "docs/server.md"


def test_the_video_object_has_the_fields_docs_server_lists():
    # docs/server.md, "The video object": its top-level fields, `settings`' extras and `timings`' keys, no more.
    from motif_lite.server.job_record import Job
    from motif_lite.server.schema import MOTIF_FIELDS, video_object

    settings = {"prompt": "a fox", "width": 64, "height": 64, "frames": 9, "fps": 24.0}
    job = Job(id="video_" + "0" * 32, seq=1, status="queued", progress=0, created_at=0.0, started_at=None,
              completed_at=None, model="tiny", settings=settings, effective={}, has_image=False, error_code=None,
              error_message=None, notes=[], loras=[])  # fmt: skip
    video = video_object(job, jobs_ahead=0)
    paragraph = SERVER.read_text().split("**The video object**")[1].split("\n\n")[0]
    named = {word for span in re.findall(r"`([^`]+)`", paragraph) for word in re.findall(r"\w+", span)}
    extras = set(video["settings"]) - set(MOTIF_FIELDS)
    assert extras == {"image_to_video", "loras", "crf", "extend_file"}  # `extend` is a create field too
    assert sorted({*video, *extras, *video["timings"]} - named) == []
    assert video["expires_at"] is None and video["remixed_from_video_id"] is None  # "always null"


def test_a_method_a_route_does_not_take_gets_405_with_the_documented_code(tmp_path):
    # docs/server.md, "Errors": 405 `method_not_allowed`, in OpenAI's error shape (even while the model loads).
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from motif_lite.server.app import ServerConfig, ServerState, create_app
    from motif_lite.server.jobs import JobStore

    store = JobStore(tmp_path / "data")
    try:  # closed: its lock file was left open (a ResourceWarning at the end of the run)
        client = TestClient(create_app(store, ServerState(ServerConfig(model_name="tiny"))))
        answer = client.put("/v1/videos", json={})
    finally:
        store.close()
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
    row = re.search(r"^\| 405 \|.*\| `(\w+)` \|$", SERVER.read_text(), re.M)
    assert row and row.group(1) == "method_not_allowed"


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")
def test_the_reverse_proxy_examples_fit_the_server(checkpoint, tmp_path):
    # docs/server.md, "Behind a reverse proxy": nginx and Caddy serve the server's default port under one path, the
    # path taken off; nginx's body limit is the largest body the server takes by default, and the prose's figures
    # are the server's; an SDK at the base URL given works through such a proxy, and an image over nginx's default
    # limit gets the proxy's 413 as the SDK's APIStatusError.
    pytest.importorskip("fastapi")
    import openai
    from server_helpers import InProcessServer, PrefixProxy

    from motif_lite import load_pipeline
    from motif_lite.server.app import MiB, ServerConfig

    section = SERVER.read_text().split("\n## Behind a reverse proxy\n")[1].split("\n## ")[0]
    prose = " ".join(section.split())
    nginx = re.search(r"```nginx\n(.*?)```", section, re.S)[1]
    caddy = re.search(r"```caddy\n(.*?)```", section, re.S)[1]
    defaults = cli.build_parser().parse_args(["serve"])
    location = re.search(r"location (\S+) \{", nginx)[1]
    prefix = location.rstrip("/")
    assert location == prefix + "/" and f"proxy_pass http://127.0.0.1:{defaults.port}/;" in nginx
    assert {f"redir {prefix} {prefix}/", f"handle_path {prefix}/* {{", f"reverse_proxy 127.0.0.1:{defaults.port}"} <= {
        line.strip() for line in caddy.splitlines()
    }
    config = ServerConfig("tiny", max_upload_bytes=int(defaults.max_upload_mb * MiB),
                          max_video_upload_bytes=int(defaults.max_video_upload_mb * MiB))  # fmt: skip
    nginx_limit = int(re.search(r"client_max_body_size (\d+)m;", nginx)[1]) * MiB
    assert nginx_limit - MiB < config.max_form_bytes <= nginx_limit
    assert f"a base64 image: {config.max_body_bytes / MiB:.1f} MiB by default" in prose
    assert f"({config.max_form_bytes / MiB:g} MiB by default)" in prose
    base = re.search(r'OpenAI\(base_url="https://host\.example(/\S+)"', prose)[1]
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    with InProcessServer(pipe, tmp_path / "data") as server, PrefixProxy(server.port, prefix) as proxy:
        client = openai.OpenAI(base_url=proxy.url + base, api_key="unused", max_retries=0, timeout=30)
        assert [model.id for model in client.models.list()] == ["tiny"]
        image = ("photo.png", bytes(1536 * 1024), "image/png")  # over nginx's default 1 MB, under the server's limit
        with pytest.raises(openai.APIStatusError) as refused:
            client.videos.create(prompt="a red fox", input_reference=image)
        assert refused.value.status_code == 413 and "<html>" in refused.value.body  # the proxy's page, not JSON
        assert server.request("GET", "/v1/videos")[1]["data"] == []


NUMBER = r"(\d[\d,]*(?:\.\d+)?(?:e-?\d+)?)"  # 1.05, 16384, 1,350, 3e-3; not the full stop after one


def _numbers_in(text: str, pattern: str) -> list[float]:
    """The numbers `pattern`'s groups capture in `text` (whitespace made single spaces first, so a claim may wrap
    anywhere; thousands separators dropped); fails when the doc no longer says it."""
    found = re.search(pattern, " ".join(text.split()))
    assert found is not None, f"the doc no longer matches {pattern!r}"
    return [float(group.replace(",", "")) for group in found.groups()]


def test_the_verify_tolerances_docs_usage_gives_are_the_commands():
    # docs/usage.md, "Checking against the reference": the tolerance per stage in each dtype, and with --gguf.
    from motif_lite.verify import GGUF_TRANSFORMER_TOLERANCE, TOLERANCES

    section = USAGE.read_text().split("## Checking against the reference")[1].split("\n## ")[0]
    fp32_stages, fp32_frames = _numbers_in(
        section, rf"{NUMBER} per stage in float32 \(.*?\) and {NUMBER} for the frames"
    )
    bf16 = _numbers_in(
        section, rf"in bfloat16 \(and float16\) {NUMBER} or {NUMBER} per stage and {NUMBER} for the frames"
    )
    (gguf,) = _numbers_in(section, rf"so that stage's tolerance is {NUMBER}")
    stages = [stage for stage in TOLERANCES[torch.float32] if stage != "frames"]
    assert {TOLERANCES[torch.float32][stage] for stage in stages} == {fp32_stages}
    assert TOLERANCES[torch.float32]["frames"] == fp32_frames
    assert sorted({TOLERANCES[torch.bfloat16][stage] for stage in stages}) == sorted(bf16[:2])
    assert TOLERANCES[torch.bfloat16]["frames"] == bf16[2]
    assert gguf == GGUF_TRANSFORMER_TOLERANCE


MEMORY = Path(__file__).resolve().parent.parent / "docs/memory.md"
# Where docs/memory.md states each of the planner's named constants (runtime/planner.py, stage_memory.py,
# vae_memory.py, activation_memory.py); `_planner_constants` gives the code's values in the same order.
MEMORY_CLAIMS = {
    "ESTIMATE_MARGIN": rf"\(weights \+ activations\) x {NUMBER}",
    "WORKSPACE_BYTES": rf"\+ {NUMBER} MiB of cuBLAS workspace",
    "SAMPLER_LATENTS": rf"the sampler's latent-sized tensors \({NUMBER} latents\)",
    "RESERVED_RATIO": rf"the plan prints `x {NUMBER}` of its peak as the expected reserve",
    "RESERVED_RATIO in the budget": rf"Without `--vram` the budget is the GPU's free memory / {NUMBER}",
    "TOKEN_CHUNKS": rf"token chunks of {NUMBER} .*?→ chunks of {NUMBER} →",
    "VAE_TILES": rf"VAE tiles {NUMBER}/{NUMBER}, {NUMBER}/{NUMBER} →",
    "VAE_BANDS": rf"then {NUMBER}, {NUMBER}, {NUMBER} exact bands",
    "DEQUANT_BYTES_PER_WEIGHT": rf"largest linear \(7680 x 1536\) x {NUMBER} bytes",
    "decoder_caches of Wan2.1 per pixel": rf"causal caches {NUMBER}",
    "decoder_caches of Wan2.1 in channels": rf"2 · \({NUMBER}/64 \+ {NUMBER}/16 \+ {NUMBER}/4 \+ {NUMBER}\)",
    "VAE_WORK_ELEMS_PER_PIXEL": rf"frame by frame \({NUMBER} counted\)",
    "VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK": rf"with 4 frames at once \({NUMBER}\)",
    "VAE_ENCODE_ELEMS_PER_PIXEL": rf"~{NUMBER} elements per input pixel",
    "TEXT_NON_LAYER_FRACTION, TEXT_LAYER_FRACTION (%)": rf"embedding ≈ {NUMBER} %, one layer ≈ {NUMBER} %",
}


def _planner_constants() -> dict[str, list[float]]:
    from motif_lite.runtime import activation_memory, planner, stage_memory, vae_memory
    from motif_lite.vae.config import WanVAEConfig

    wan21_caches = vae_memory.decoder_caches(WanVAEConfig())
    return {
        "ESTIMATE_MARGIN": [stage_memory.ESTIMATE_MARGIN],
        "WORKSPACE_BYTES": [stage_memory.WORKSPACE_BYTES / stage_memory.MiB],
        "SAMPLER_LATENTS": [stage_memory.SAMPLER_LATENTS],
        "RESERVED_RATIO": [planner.RESERVED_RATIO],
        "RESERVED_RATIO in the budget": [planner.RESERVED_RATIO],
        "TOKEN_CHUNKS": list(planner.TOKEN_CHUNKS),
        "VAE_TILES": [n for tile in planner.VAE_TILES for n in (tile.size, tile.overlap)],
        "VAE_BANDS": list(planner.VAE_BANDS),
        "DEQUANT_BYTES_PER_WEIGHT": [stage_memory.DEQUANT_BYTES_PER_WEIGHT],
        "decoder_caches of Wan2.1 per pixel": [wan21_caches.elems_per_pixel()],
        # Channels per resolution: the caches read from the decoder keep 2 past frames of each.
        "decoder_caches of Wan2.1 in channels": [
            n / 2 for n in (wan21_caches.lower + wan21_caches.levels[0], *wan21_caches.levels[1:])
        ],
        "VAE_WORK_ELEMS_PER_PIXEL": [vae_memory.VAE_WORK_ELEMS_PER_PIXEL],
        "VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK": [vae_memory.VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK],
        "VAE_ENCODE_ELEMS_PER_PIXEL": [vae_memory.VAE_ENCODE_ELEMS_PER_PIXEL],
        "TEXT_NON_LAYER_FRACTION, TEXT_LAYER_FRACTION (%)": [
            100 * activation_memory.TEXT_NON_LAYER_FRACTION,
            100 * activation_memory.TEXT_LAYER_FRACTION,
        ],
    }


@pytest.mark.parametrize("constant", list(MEMORY_CLAIMS))
def test_the_planner_constants_docs_memory_names_are_the_codes(constant):
    # docs/memory.md, "Weights", "VAE decode", "VAE encode", "Stage estimates" and "Ladder": each number the page
    # gives for a named constant of the planner.
    assert _numbers_in(MEMORY.read_text(), MEMORY_CLAIMS[constant]) == pytest.approx(_planner_constants()[constant])


def test_docs_usage_lora_section_tells_of_the_servers_per_job_loras():
    # docs/usage.md, "LoRA adapters": a server's jobs may name their own LoRAs when it has --lora-dir (docs/server.md,
    # "Per-job LoRAs"); the section once said a job could not choose its LoRAs.
    import argparse

    from motif_lite.cli.serve import register

    commands = argparse.ArgumentParser().add_subparsers()
    register(commands)
    assert "--lora-dir" in commands.choices["serve"].format_help()
    section = " ".join(USAGE.read_text().split("## LoRA adapters")[1].split("\n## ")[0].split())
    assert "a job cannot choose its LoRAs" not in section
    assert "`--lora-dir DIR`" in section and '"Per-job LoRAs"' in section


@pytest.mark.parametrize(
    ("page", "heading", "command"),
    [(USAGE, "## Flags of `motif-lite run`", "run"), (SERVER, "## Flags", "serve")],
)
def test_the_flag_tables_give_the_commands_defaults(page, heading, command):
    # docs/usage.md, "Flags of `motif-lite run`", and docs/server.md, "Flags": a row's default column names the value
    # the command's parser starts from, where that is a number or a word (None, False and [] mean "see the meaning"),
    # or "as `run`" where it is run's.
    import argparse

    (commands,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser = commands.choices[command]
    section = page.read_text().split(heading + "\n")[1].split("\n## ")[0]
    wrong = []
    for row in (line for line in section.splitlines() if line.startswith("| `")):
        flag_cell, default_cell = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:3]]
        for flag in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", flag_cell):
            default = parser._option_string_actions[flag].default
            if default_cell == "as `run`":  # the same default as run's, whose table gives it
                if default != commands.choices["run"]._option_string_actions[flag].default:
                    wrong.append(f"{flag}: the table says as run's, but run's is not {default!r}")
                continue
            if isinstance(default, bool) or not isinstance(default, int | float | str) or len(str(default)) > 40:
                continue
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            if not re.search(rf"(?<![\w.-]){re.escape(shown)}(?![\w-])", default_cell):
                wrong.append(f"{flag}: the table says {default_cell!r}, the parser {shown!r}")
    assert not wrong, "\n".join(wrong)


def test_the_import_flow_in_the_readme_is_the_one_test_layers_enforces():
    # README.md, "Layout": "Imports flow one way: `cli` → ... → `config`"; each step down the arrows is a lower layer
    # of tests/test_layers.py, and every package under motif_lite/ (and kernels/, quantize/) is named.
    from test_layers import LAYER

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    flow = " ".join(readme.split("Imports flow one way:")[1].split("(`tests/test_layers.py`")[0].split())
    steps = [re.findall(r"`(\w+)`", step) for step in flow.split("→")]
    assert all(steps), flow
    for higher, lower in zip(steps, steps[1:], strict=False):
        assert min(LAYER[name] for name in higher) > max(LAYER[name] for name in lower), (higher, lower)
    root = Path(__file__).resolve().parent.parent
    packages = {path.parent.name for path in (root / "motif_lite").glob("*/__init__.py")} | {"kernels", "quantize"}
    assert sorted(packages - {name for step in steps for name in step}) == []


@pytest.mark.parametrize(
    ("card", "vram", "transformer"),
    [("12 GB", "10.37", "Q4_K_M"), ("8 GB", "6.67", "bf16"), ("8 GB", "6.67", "Q4_K_M"), ("6 GB", "5", "Q4_K_M")],
)
def test_the_6_8_gb_table_of_docs_memory_is_the_planners(no_network, no_weights, capsys, card, vram, transformer):
    # docs/memory.md, "On a 6-8 GB GPU": each row's peak, reserved and host figures are what the dry run prints.
    assert_the_dry_run_prints_the_row(capsys, card, vram, transformer)


def assert_the_dry_run_prints_the_row(capsys, card: str, vram: str, transformer: str) -> None:
    """The row of docs/memory.md's 6-8 GB table for `card` and `transformer` holds what `run --dry-run --device cuda
    --vram {vram}` prints: its peak, reserved and host figures, and its streamed blocks."""
    section = MEMORY.read_text().split("## On a 6-8 GB GPU", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith(f"| {card} | ") and f"| {transformer}" in line)
    gguf = ["--gguf", "Q4_K_M"] if transformer == "Q4_K_M" else []
    assert cli.main(["run", "--dry-run", "--device", "cuda", "--vram", vram, *gguf, "-p", "a fox"]) == 0
    out = capsys.readouterr().out
    peak, reserved = re.search(r"device peak (\S+) GiB allocated .*~(\S+) GiB reserved", out).groups()
    host = re.search(r"host peak (\S+) GiB RSS", out).group(1)
    assert f"| {peak} GiB ({reserved}) | {host} GiB |" in row, (row, out)
    streamed = re.search(r"(\d+ of 36) transformer blocks streamed from host memory \((\S+ GiB) copied", out)
    said = None if streamed is None else f"{streamed.group(1)} blocks streamed, {streamed.group(2)} copied per forward"
    assert (said is None and "blocks streamed" not in row) or (said is not None and said in row), (row, out)


def test_the_example_that_reads_a_results_frames_back_closes_ffmpegs_pipes(tmp_path):
    # docs/usage.md, "Frames": the example read the file with imageio_ffmpeg.read_frames, which leaves the pipes of an
    # ffmpeg that finished (a short video) to the garbage collector: a ResourceWarning, an error under -W error.
    # It is `result.read_frames()` now, which must close them too.
    import gc
    import warnings

    import numpy as np

    from motif_lite.io.video import write_video
    from motif_lite.pipeline import GenerationResult
    from motif_lite.request import GenerationRequest

    (example,) = [block for block in re.findall(r"```python\n(.*?)```", USAGE.read_text(), re.S)
                  if "read_frames()" in block and "[F, H, W, 3]" in block]  # fmt: skip
    written = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    written[:] = written[:, :1, :1]  # a flat colour per frame: H.264 keeps it
    output = write_video(written, tmp_path / "fox.mp4", fps=24)
    request = GenerationRequest("a fox", width=48, height=32, frames=5, seed=1, output=output)
    result = GenerationResult(output, request, 0.0, {}, None, None)
    scope = {"result": result}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        exec(example, scope)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    frames = scope["frames"]
    assert frames.shape == written.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - written).max() <= 4


@pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")  # the SDK marks client.videos so
def test_the_sdk_still_cannot_send_a_video_id_to_extend_itself():
    # docs/server.md, "With the SDK's `extend`": the SDK takes any `video` for a file to upload and raises before
    # sending, so the page tells to give the id in `extra_body`. When an SDK release sends it, the page must change.
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="unused", max_retries=0)
    with pytest.raises(RuntimeError, match="Expected entry at `video` to be bytes"):
        client.videos.extend(prompt="a fox", seconds="4", video={"id": "video_" + "0" * 32})
    said = " ".join(SERVER.read_text().split("**With the SDK's `extend`.**")[1].split("```")[0].split())
    assert 'cannot send `video={"id": ...}` itself' in said and "give the id in `extra_body`" in said


def test_the_layout_in_the_readme_names_every_module_of_the_package():
    # README.md, "Layout": the tree gives each top-level module and package of motif_lite/ a line (json_values.py,
    # log_filters.py, stopping.py and memory_advice.py had none).
    root = Path(__file__).resolve().parent.parent
    tree = (root / "README.md").read_text().split("## Layout")[1].split("```")[1]
    named = set(re.findall(r"^  (\w+(?:\.py|/))", tree, re.M))
    package = {p.name for p in (root / "motif_lite").glob("*.py")} | {
        p.parent.name + "/" for p in (root / "motif_lite").glob("*/__init__.py")
    }
    assert sorted(package - named - {"__init__.py", "__main__.py"}) == [], (
        "each of these needs a line in README.md's Layout tree: its name two spaces in, then what it holds"
    )


README = Path(__file__).resolve().parent.parent / "README.md"


def _planned_peaks(width: int, height: int, frames: int, weight_bytes: int) -> tuple[float, float]:
    """The planner's estimated device peak (GiB) with everything resident and of its smallest plan, as
    bench/bench_sizes.py computes the README's table: CUDA, fused norms, the guidance predictions one after the other,
    bf16 text encoder and VAE, our Triton kernels and `auto` attention (its tuning buffer counted)."""
    from motif_lite.config import TransformerConfig
    from motif_lite.errors import MotifLiteError
    from motif_lite.runtime.kernels import autotune_buffer_bytes
    from motif_lite.runtime.planner import PlannerInputs, plan_memory
    from motif_lite.sizes import OFFICIAL_TEXT_ENCODER_PARAMS
    from motif_lite.vae.config import WanVAEConfig

    def plan(budget):
        inputs = PlannerInputs(
            width, height, frames, TransformerConfig(), weight_bytes, 2 * OFFICIAL_TEXT_ENCODER_PARAMS,
            WanVAEConfig(), cfg_batch=1, vae_dtype=torch.bfloat16, fused_norms=True,
            autotune_bytes=autotune_buffer_bytes(True), triton_attention=True,
        )  # fmt: skip
        return plan_memory(inputs, budget, device="cuda")

    resident = plan(None).peak_bytes / 2**30
    with pytest.raises(MotifLiteError) as refused:  # a 1-byte budget: the error names the smallest plan's peak
        plan(1)
    return resident, float(str(refused.value).split("needs at least ")[1].split(" GiB")[0])


def test_the_gpu_memory_table_of_the_readme_is_the_planners():
    # README.md, "What you need", "GPU memory": each row's all-resident and smallest-plan peak for the Q4_K_M
    # transformer, and what the bf16 transformer adds to each column, are the planner's figures now (they are
    # computed, so a planner change must carry them along; docs/benchmarks.md, "Sizes", has the same table).
    from motif_lite.config import TransformerConfig
    from motif_lite.sizes import estimated_gguf_bytes, transformer_weights

    section = README.read_text().split("- **GPU memory**")[1].split("- **Time**")[0]
    rows = re.findall(r"^\s*\| (\d+)x(\d+)x(\d+)[^|]* \| ([\d.]+) GiB \| ([\d.]+) GiB \|$", section, re.M)
    assert len(rows) == 4, section
    q4, _ = estimated_gguf_bytes(TransformerConfig(), "Q4_K_M")
    bf16 = 2 * transformer_weights(TransformerConfig())
    resident_added, smallest_added = _numbers_in(
        section, rf"With the bf16 transformer add {NUMBER} GiB to the first column and up to {NUMBER} GiB"
    )
    added = [], []
    for width, height, frames, resident, smallest in rows:
        size = int(width), int(height), int(frames)
        planned = _planned_peaks(*size, q4)
        assert [round(p, 2) for p in planned] == [float(resident), float(smallest)], size
        for kind, q4_peak, bf16_peak in zip(added, planned, _planned_peaks(*size, bf16), strict=True):
            kind.append(bf16_peak - q4_peak)
    assert {round(a, 1) for a in added[0]} == {resident_added}
    assert round(max(added[1]), 2) == smallest_added


BENCHMARKS = Path(__file__).resolve().parent.parent / "docs/benchmarks.md"


@pytest.mark.parametrize(
    ("size", "options"),
    [
        ("1280x736x121", "`--vram 6`"),
        ("1280x736x121", "`--vram 6 --text-encoder-gguf te-Q8_0.gguf`"),
        ("832x480x121", "`--vram 4 -W 832 -H 480`"),
    ],
)
def test_the_low_memory_plans_docs_benchmarks_prints_are_the_dry_runs(no_network, no_weights, capsys, size, options):
    # docs/benchmarks.md, "Low-memory plans": the plans "as `motif-lite run --dry-run --device cuda --gguf Q4_K_M -p
    # x` prints them with the options below"; the README's "Host RAM" and `--vram 4` figures come from these rows.
    # The Q8_0 text encoder is planned at its recipe's packed size, as --text-encoder-quantize Q8_0 plans it.
    section = BENCHMARKS.read_text().split("### Low-memory plans", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith(f"| {size} | {options} |"))
    flags = options.strip("`").replace("--text-encoder-gguf te-Q8_0.gguf", "--text-encoder-quantize Q8_0").split()
    assert cli.main(["run", "--dry-run", "--device", "cuda", "--gguf", "Q4_K_M", "-p", "x", *flags]) == 0
    out = capsys.readouterr().out
    peak, reserved = re.search(r"device peak (\S+) GiB allocated .*~(\S+) GiB reserved", out).groups()
    host = re.search(r"host peak (\S+) GiB RSS", out).group(1)
    device_cell, host_cell = [cell.strip() for cell in row.split("|")[3:5]]
    assert device_cell == "as above" or device_cell.startswith(f"{peak} / ~{reserved} GiB"), (row, out)
    assert host_cell.startswith(f"{host} GiB"), (row, out)


def _ladder_rows() -> list[str]:
    section = MEMORY.read_text().split("The ladder for the same request at\nother budgets", 1)[1].split("\n\n")[1]
    return [line for line in section.splitlines() if re.match(r"\| \d+x\d+x\d+ \| ", line)]


@pytest.mark.parametrize("row", _ladder_rows())
def test_the_ladder_docs_memory_gives_is_the_dry_runs(no_network, no_weights, capsys, row):
    # docs/memory.md, "The plans": each rung's stage estimates and peak (reserved), or the refusal's figures, are
    # what `motif-lite run --dry-run --device cuda --gguf Q4_K_M` prints at that --vram now.
    size, vram, _, stages, peak = [cell.strip().strip("*") for cell in row.strip("|").split("|")]
    width, height, _ = size.split("x")
    args = ["run", "--dry-run", "--device", "cuda", "--gguf", "Q4_K_M", "-W", width, "-H", height, "-p", "x"]
    code = cli.main([*args, "--vram", vram])
    out, err = capsys.readouterr()
    if not stages:  # a refused budget: the row quotes the error
        quoted = re.search(r'"(.*)"', row).group(1).split(" ... ")
        assert code == cli.EXIT_USER_ERROR and all(part in err for part in quoted), (row, err)
        return
    printed = re.findall(r"^(?:encode|denoise|decode) +(\S+) GiB", out, re.M)
    assert " / ".join(printed) == stages, (row, out)
    allocated, reserved = re.search(r"device peak (\S+) GiB allocated .*~(\S+) GiB reserved", out).groups()
    assert peak.replace("*", "") == f"{allocated} ({reserved})", (row, out)


def _benchmarks_section(name: str) -> str:
    """The text of docs/benchmarks.md under the heading that starts with `name`, down to the next heading of its
    level or above."""
    lines = BENCHMARKS.read_text().splitlines()
    headings = [(i, line) for i, line in enumerate(lines) if re.match(r"#+ ", line)]  # not a wrapped "#16"
    start, heading = next((i, line) for i, line in headings if line.lstrip("#").strip().startswith(name))
    level = len(heading) - len(heading.lstrip("#"))
    end = next((i for i, line in headings if i > start and len(line) - len(line.lstrip("#")) <= level), len(lines))
    return "\n".join(lines[start + 1 : end])


_FIGURE_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"  # 1,523 or 5.46
FIGURE = re.compile(  # 5.46 GiB, 1,523 MB, 1.02-1.07x, 8.8 s
    rf"(?<![\d.,]){_FIGURE_NUMBER}(?:-{_FIGURE_NUMBER})? ?(GiB|GB|MB|ms|s\b|min\b|x\b|%)"
)
# A decimal without a unit (1.08, as a ratio column gives it), not one FIGURE reads, nor a version like 2.11.0.
DECIMAL = re.compile(r"(?<![\d.])\d+\.\d+(?!\d|\.\d| ?[A-Za-z%])")


def _figures_missing_from(passage: str, sections: list[str], every_decimal: bool = False) -> list[str]:
    """The figures of `passage` (GiB, GB, MB, ms, s, min, x, %, both ends of a range; with `every_decimal` also
    those without a unit) that no number of the named sections of docs/benchmarks.md gives to the digits shown. A
    ratio (x) of two figures of the passage in one unit that are there counts too (6.8 s against 6.5 s: 1.05x)."""
    text = " ".join(_benchmarks_section(name) for name in sections)
    there = {float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}
    passage = " ".join(passage.split())
    figures = [(figure.replace(",", ""), unit) for *pair, unit in FIGURE.findall(passage) for figure in pair if figure]
    if every_decimal:
        figures += [(figure, "") for figure in DECIMAL.findall(passage)]

    def found(figure: str, among: set[float]) -> bool:  # to the digits shown, a half rounded either way (0.0145)
        half = 0.5 * 10 ** -(len(figure.split(".")[1]) if "." in figure else 0)
        return any(abs(n - float(figure)) <= half * (1 + 1e-9) for n in among)

    quantities: dict[str, list[float]] = {}
    for figure, unit in figures:
        if unit not in ("x", "%", "") and found(figure, there):
            quantities.setdefault(unit, []).append(float(figure))
    ratios = {a / b for shown in quantities.values() for a in shown for b in shown if b}
    return [f for f, unit in figures if not found(f, there) and not (unit == "x" and found(f, ratios))]


def test_each_figure_the_readme_measured_section_gives_is_in_the_benchmarks_section_it_names():
    # README.md, "Measured": "Each figure is from a table in docs/benchmarks.md, with its conditions there": every
    # decimal figure of a bullet (GiB, GB, s, x, %) is, to the digits shown, a number of a section the bullet names.
    bullets = README.read_text().split("## Measured")[1].split("\n## ")[0].split("\n- ")[1:]
    assert len(bullets) == 5, bullets
    for bullet in bullets:
        names = [" ".join(name.split()) for name in re.findall(r'"([^"]+)"', bullet)]
        assert names, bullet
        assert _figures_missing_from(bullet, names) == [], names


def test_the_host_accuracy_docs_memory_sums_up_is_its_tables():
    # docs/memory.md, "Host memory": the summary of how close the host estimate came (it said "within 2 %" on the
    # CPU while the "Planner accuracy" table gave 1.07-1.14) spans the CPU rows of that table, and the H200's figure
    # is the one "Low-memory plans" of docs/benchmarks.md measured.
    text = MEMORY.read_text()
    h200, low, high = _numbers_in(
        text, rf"the host estimate was within {NUMBER} % of the peak RSS on an H200 and {NUMBER}-{NUMBER} % above it"
    )
    table = text.split("## Planner accuracy", 1)[1].split("\n## ", 1)[0]
    ratios = [
        float(n)
        for row in table.splitlines()
        if row.startswith("| host peak RSS")
        for n in re.findall(r"\d\.\d+", row.split("|")[2].split("(")[0])
    ]
    assert len(ratios) >= 2 and (low, high) == (round(100 * min(ratios) - 100), round(100 * max(ratios) - 100))
    estimate, measured = _numbers_in(
        _benchmarks_section("Low-memory plans"), rf"\| \| host RSS \| {NUMBER} GiB \| {NUMBER} GiB \|"
    )
    assert abs(estimate / measured - 1) * 100 <= h200


def test_the_supported_types_table_of_docs_gguf_is_the_loaders():
    # docs/gguf.md, "Supported types": the types listed are the ones a file may hold, each with its bits per weight
    # and block size as GGUF defines them.
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    from motif_lite.weights.dequant import SUPPORTED_TYPES

    section = (Path(__file__).resolve().parent.parent / "docs/gguf.md").read_text().split("## Supported types")[1]
    rows = re.findall(r"^\| ([\w, ]+) \| ([\d.]+) \| ([\d /]+) \|", section.split("\n\n")[1], re.M)
    listed = {}
    for names, bits, blocks in rows:
        names, blocks = names.split(", "), blocks.split(" / ")
        for name, block in zip(names, blocks * len(names) if len(blocks) == 1 else blocks, strict=True):
            listed[name] = (float(bits), int(block))
    assert set(listed) == {t.name for t in SUPPORTED_TYPES}
    for name, (bits, block) in listed.items():
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
        assert (8 * type_size / block_size, block_size) == (bits, block), name


QUANTIZE = Path(__file__).resolve().parent.parent / "docs/quantize.md"


def test_the_round_trip_table_of_docs_quantize_is_the_quantizers():
    # docs/quantize.md, "Relative RMSE of one round trip": each figure is what the quantizer gives on
    # tests/round_trips.py's data now, to the digits shown (the naive columns of Q3_K and Q4_K said 0.199 and
    # 0.098 for 0.198 and 0.097), and the sentence after it the K-quants' gain over the legacy types.
    from gguf import GGMLQuantizationType
    from round_trips import data, naive_rtn, rel_rmse, round_trip

    table = QUANTIZE.read_text().split("Relative RMSE of one round trip")[1].split("\n\n")[1]
    rows = re.findall(r"^\| (Q\w+) \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+|—) \|$", table, re.M)
    assert len(rows) == 8, table
    measured = {}
    for name, gauss, student_t, naive in rows:
        qtype = GGMLQuantizationType[name]
        for shown, kind in [(gauss, "gauss"), (student_t, "student_t")]:
            measured[name, kind] = rel_rmse(data(kind), round_trip(qtype, kind).approx)
            assert f"{measured[name, kind]:.{len(shown) - 2}f}" == shown, (name, kind)
        if naive != "—":  # the same level count: 2^bits - 1 levels in groups of 16 or 32, by the type's sub-blocks
            bits, group = int(name[1]), 16 if name in ("Q2_K", "Q3_K", "Q6_K") else 32
            x = data("gauss")
            assert f"{rel_rmse(x, naive_rtn(x, bits, group)):.{len(naive) - 2}f}" == naive, name
    gains = {
        kind: sorted(round(100 * (1 - measured[f"Q{b}_K", kind] / measured[f"Q{b}_0", kind])) for b in (4, 5))
        for kind in ("gauss", "student_t")
    }
    said = _numbers_in(QUANTIZE.read_text(), rf"{NUMBER}-{NUMBER} % less error .*? and {NUMBER}-{NUMBER} % less")
    assert said == [*gains["gauss"], *gains["student_t"]]


PARALLEL = Path(__file__).resolve().parent.parent / "docs/parallel.md"


def _smallest_plans_per_rank() -> list[tuple[str, str]]:
    section = PARALLEL.read_text().split("## Memory per rank", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| (\d+)[^|]* \| [\d.]+ GiB \| ([\d.]+) GiB", section, re.M)


@pytest.mark.parametrize(("sp", "smallest"), _smallest_plans_per_rank())
def test_the_smallest_plan_per_rank_docs_parallel_gives_is_the_dry_runs(no_network, no_weights, capsys, sp, smallest):
    # docs/parallel.md, "Memory per rank": the smallest plan of a rank at 1280x736x121 per sequence-parallel degree,
    # as a too-small --vram names it in `motif-lite run --dry-run --device cuda --gguf Q4_K_M --cfg-scale 0 --gpus N`.
    gpus = [] if sp == "1" else ["--gpus", sp]
    args = ["run", "--dry-run", "--device", "cuda", "--gguf", "Q4_K_M", "--cfg-scale", "0", "--vram", "1", "-p", "x"]
    assert cli.main([*args, *gpus]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"needs at least {smallest} GiB of device memory" in err, err


def test_the_host_ram_and_small_plan_figures_of_the_readme_are_the_dry_runs(no_network, no_weights, capsys):
    # README.md, "Host RAM" and "GPU memory": "the planner estimates about 12 GiB with Q4_K_M and a bf16 text
    # encoder, about 8.4 GiB with a Q8_0 text encoder" (the --vram 6 plan at 720p) and "`--vram 4` at 832x480x121
    # plans 3.4 GiB", to the digits shown.
    text = README.read_text()
    (bf16_host,) = _numbers_in(text, rf"the planner estimates about {NUMBER} GiB with Q4_K_M")
    (q8_host,) = _numbers_in(text, rf"\*\*about {NUMBER} GiB with a Q8_0 text encoder\*\*")
    (small_plan,) = _numbers_in(text, rf"`--vram 4` at 832x480x121 plans {NUMBER} GiB")

    def dry_run(*flags: str) -> str:
        assert cli.main(["run", "--dry-run", "--device", "cuda", "--gguf", "Q4_K_M", "-p", "x", *flags]) == 0
        return capsys.readouterr().out

    def host(out: str) -> float:
        return float(re.search(r"host peak (\S+) GiB RSS", out).group(1))

    assert round(host(dry_run("--vram", "6"))) == bf16_host
    assert round(host(dry_run("--vram", "6", "--text-encoder-quantize", "Q8_0")), 1) == q8_host
    out = dry_run("--vram", "4", "-W", "832", "-H", "480")
    assert round(float(re.search(r"device peak (\S+) GiB allocated", out).group(1)), 1) == small_plan


def test_the_t4_notebook_figures_of_docs_usage_are_the_dry_runs(no_network, no_weights, capsys):
    # docs/usage.md, "In a notebook": on a T4 (fp16, a 13.5 GiB budget) the host peak at loading with the bf16 and
    # with a Q8_0 text encoder, and the device peak with the Q8_0 one at 1280x736x121 and at 832x480x65 (batched);
    # the last said 6.35 GiB where the plan gives 6.34.
    section = " ".join(USAGE.read_text().split("## In a notebook", 1)[1].split("\n## ", 1)[0].split())
    (bf16_host,) = _numbers_in(section, rf"loading peaks at an estimated {NUMBER} GiB")
    (q8_host,) = _numbers_in(section, rf"With a Q8_0 text encoder the estimate is {NUMBER} GiB")
    at_720p, at_480p = _numbers_in(section, rf"{NUMBER} GiB estimated device peak .*? 65 frames, {NUMBER} GiB, the two")

    def dry_run(*flags: str) -> tuple[float, float, str]:
        args = ["run", "--dry-run", "--device", "cuda", "--vram", "13.5", "--dtype", "fp16", "--gguf", "Q4_K_M"]
        assert cli.main([*args, "-p", "x", *flags]) == 0
        out = capsys.readouterr().out
        device = float(re.search(r"device peak (\S+) GiB allocated", out).group(1))
        return device, float(re.search(r"host peak (\S+) GiB RSS", out).group(1)), out

    assert dry_run()[1] == bf16_host
    device, host, _ = dry_run("--text-encoder-quantize", "Q8_0")
    assert (device, host) == (at_720p, q8_host)
    device, _, out = dry_run("--text-encoder-quantize", "Q8_0", "-W", "832", "-H", "480", "--video-frames", "65")
    assert device == at_480p and "2 rows per transformer forward" in out


KERNELS = Path(__file__).resolve().parent.parent / "docs/kernels.md"
INT8_SPEED = (
    rf"{NUMBER}-{NUMBER}x SDPA's speed on the masked joint attention and {NUMBER}-{NUMBER}x on the DDT decoder's"
)


def test_the_int8_attention_speed_the_docs_give_is_the_revised_kernels_h200_table():
    # docs/usage.md (the --attention row and "Going faster") and docs/kernels.md ("When to choose it"): the 8-bit
    # kernel's speed against SDPA spans the FP8 column of the latest H200 table of docs/benchmarks.md, "8-bit
    # attention" (the pages said the revised kernel was not yet timed after its 2026-12-04 run had timed it).
    latest = _benchmarks_section("8-bit attention").split("**The revised kernel on an H200", 1)[1].split("\n\n")[1]
    ratios = {"joint": [], "DDT decoder": []}
    for row in latest.splitlines():
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        kind = next((kind for kind in ratios if cells[0].startswith(kind)), None)
        if kind is not None:
            ratios[kind].append(float(re.search(r"\((?:\*\*)?([\d.]+)x", cells[2]).group(1)))
    assert all(len(found) == 2 for found in ratios.values()), latest
    expected = [min(ratios["joint"]), max(ratios["joint"]), min(ratios["DDT decoder"]), max(ratios["DDT decoder"])]
    for page, times in ((USAGE, 2), (KERNELS, 1)):
        claims = re.findall(INT8_SPEED, " ".join(page.read_text().split()))
        assert len(claims) == times, page
        assert all([float(n) for n in claim] == expected for claim in claims), (page, claims, expected)
    # docs/kernels.md, "Limits": the decoder's range alone, of the same FP8 column (the 16-bit P·V column's
    # 0.93-0.98x there passed while only the figures' presence in the benchmarks section was checked).
    limits = re.findall(
        rf"the revised kernel with FP8 P·V ran the decoder's attention at {NUMBER}-{NUMBER}x SDPA's speed",
        " ".join(KERNELS.read_text().split()),
    )
    assert [[float(n) for n in claim] for claim in limits] == [expected[2:]], (limits, expected)


def test_the_exact_attention_speed_docs_kernels_sets_against_fa3_is_the_latest_trial_table():
    # docs/kernels.md, "Why `fa3`": the range of TFLOP/s the exact kernels reached is the fastest column of the
    # latest `auto` trial table of docs/benchmarks.md, "Speed features" (the page said 560-600 after the 2026-12-04
    # trial had timed cuDNN at 620-632 on the joint attention: closer to the 634 the target needs than it read).
    table = _benchmarks_section("Speed features").split("`auto`'s trial, milliseconds, the fastest first):", 1)[1]
    fastest = {}
    for row in table.split("\n\n")[1].splitlines()[2:]:
        shape, best = (cell.strip() for cell in row.strip("|").split("|")[:2])
        rate = re.search(r"\((\d+)(?: TFLOP/s)?\)", best)
        if rate:
            fastest[shape] = int(rate.group(1))
    assert len(fastest) == 4, fastest
    claim = re.search(
        r"measured (\d+)-(\d+) TFLOP/s on an H200 at the model's shapes \(the fastest at each: (\d+) for cuDNN on the "
        r"480p joint attention, (\d+) on the 720p DDT decoder's",
        " ".join(KERNELS.read_text().split()),
    )
    assert claim, "docs/kernels.md no longer gives the exact kernels' TFLOP/s in the words this test reads"
    low, high, joint, decoder = (int(n) for n in claim.groups())
    assert (low, high) == (min(fastest.values()), max(fastest.values()))
    assert joint == max(n for shape, n in fastest.items() if shape.startswith("joint 480p"))
    assert decoder == fastest["DDT decoder 720p, batch 1"]


def test_the_fused_gemms_tflops_docs_kernels_gives_are_the_dequant_tables():
    # docs/kernels.md, "Dequant-matmul: two paths": "the fused GEMM reached A-B TFLOP/s (C-Dx the bf16 GEMM's
    # time": the rates the H200 table of docs/benchmarks.md ("Kernels, second versions") gives as bf16 GEMM time x
    # ratio, over every shape and type the fused GEMM ran (the page said 130-250 where the table reaches 235).
    section = _benchmarks_section("Kernels, second versions")
    table = section.split("| M x N x K | bf16 GEMM |", 1)[1].split("\n\n")[0]
    ratios, rates = [], []
    for row in table.splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        if cells[3] == "—":
            continue
        m, n, k = (int(size) for size in cells[0].split(" x "))
        seconds = float(cells[1].removesuffix(" ms")) * 1e-3
        for ratio in (float(r) for r in re.findall(r"\d+(?:\.\d+)?", cells[3])):
            ratios.append(ratio)
            rates.append(2 * m * n * k / (ratio * seconds) / 1e12)
    assert len(rates) == 12, table
    page = " ".join(KERNELS.read_text().split())
    words = rf"the fused GEMM reached {NUMBER}-{NUMBER} TFLOP/s \({NUMBER}-{NUMBER}x the bf16 GEMM's time"
    said = re.search(words, page)
    assert said, "docs/kernels.md no longer gives the fused GEMM's speed in the words this test reads"
    low, high, fastest, slowest = (float(n) for n in said.groups())
    assert (low, high) == (round(min(rates)), round(max(rates))), rates
    assert (fastest, slowest) == (min(ratios), max(ratios))


TESTING = Path(__file__).resolve().parent.parent / "docs/testing.md"


def test_the_int8_kernels_tolerance_the_docs_give_per_case_is_the_tests(monkeypatch):
    # docs/kernels.md, "Accuracy", and docs/testing.md's kernels row give the 8-bit kernel's bound to its emulation
    # per case: the interpreter with 16-bit P·V (and FP8 P·V on 70 keys), the interpreter's FP8 key-loop cases, and
    # FP8 P·V compiled on a GPU. Each is compared with what test_kernels_int8's `emulation_tolerance` returns for
    # that case, the bound its tests apply (the pages gave the interpreter's FP8 key-loop cases the 16-bit bound).
    import ast
    import inspect

    import test_kernels_int8 as int8_tests

    def bound(pv: str, device: str, **case: bool) -> tuple[float, float]:
        monkeypatch.setattr(int8_tests, "DEVICE", device)
        tolerance = int8_tests.emulation_tolerance(pv, **case)
        return tolerance["atol"], tolerance["rtol"]

    interpreter = bound("16bit", "cpu")
    assert bound("fp8", "cpu") == interpreter  # the FP8 cases on 70 keys
    key_loops, gpu = bound("fp8", "cpu", key_loops=True), bound("fp8", "cuda")
    # The key-loop test applies the key-loop case's bound, and the tests take FP8's wider bound from nowhere else.
    assert "emulation_tolerance(pv, key_loops=True)" in inspect.getsource(int8_tests.test_key_loops_match_emulation)
    module = ast.parse(inspect.getsource(int8_tests))
    readers = [
        node.name
        for node in module.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(n, ast.Name) and n.id == "EMULATION_FP8" for n in ast.walk(node))
    ]
    assert readers == ["emulation_tolerance"], readers

    page = " ".join(KERNELS.read_text().split())
    said = re.search(
        rf"to rounding: within {NUMBER} plus {NUMBER} of the value with 16-bit P·V, and with FP8 P·V on 70 keys\. "
        rf".* in the interpreter's key-loop cases \(150-320 keys, FP8 P·V\) .* so those cases allow {NUMBER} plus "
        rf"{NUMBER} of the value; .* so the GPU allows {NUMBER} plus {NUMBER} of the value in every FP8 P·V case",
        page,
    )
    assert said, "docs/kernels.md no longer gives the 8-bit kernel's tolerances in the words this test reads"
    numbers = [float(n) for n in said.groups()]
    assert (tuple(numbers[0:2]), tuple(numbers[2:4]), tuple(numbers[4:6])) == (interpreter, key_loops, gpu)

    row = " ".join(TESTING.read_text().split())
    said = re.search(
        rf"8-bit: emulation within {NUMBER} abs / {NUMBER} rel \(FP8 P·V: {NUMBER} abs in the interpreter's "
        rf"key-loop cases of 150-320 keys and in every case compiled on a GPU\)",
        row,
    )
    assert said, "docs/testing.md no longer gives the 8-bit kernel's tolerances in the words this test reads"
    atol, rtol, fp8_atol = (float(n) for n in said.groups())
    assert (atol, rtol) == interpreter
    assert fp8_atol == key_loops[0] == gpu[0] and key_loops[1] == gpu[1] == rtol


class _ShapeOnly:
    """A safetensors slice whose shape and dtype may be read, not its values."""

    def __init__(self, stored) -> None:
        self._stored = stored

    def get_shape(self):
        return self._stored.get_shape()

    def get_dtype(self):
        return self._stored.get_dtype()

    def __getitem__(self, index):
        pytest.fail("a tensor's values were read")


class _HeaderOnly:
    """safe_open's handle with the header readable and every tensor's values refused."""

    def __init__(self, path, **kwargs) -> None:
        self._handle = _REAL_SAFE_OPEN(path, **kwargs)

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def keys(self):
        return self._handle.keys()

    def metadata(self):
        return self._handle.metadata()

    def get_slice(self, name):
        return _ShapeOnly(self._handle.get_slice(name))

    def get_tensor(self, name):
        pytest.fail(f"{name} was read")

    def __getattr__(self, name):  # what else safe_open's handle offers reads tensors (get_tensors, ...)
        pytest.fail(f"safe_open's {name} was used")


_REAL_OPEN = open  # the real one while _WeightReads replaces it


class _HeaderBytesOnly(io.RawIOBase):
    """A safetensors file opened for reading whose header bytes may be read and whose tensor bytes may not."""

    def __init__(self, path: Path, data_start: int) -> None:
        self._file, self._data_start = _REAL_OPEN(path, "rb", buffering=0), data_start
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer) -> int:
        # A read that reaches into the tensor bytes gets the header's bytes only (buffered readers ask for more than
        # their caller wants); one that starts there fails.
        start = self._file.tell()
        if start >= self._data_start and len(buffer) > 0:
            pytest.fail(f"the tensor bytes of {self.name} were read (from byte {start})")
        return self._file.readinto(memoryview(buffer)[: self._data_start - start])

    def close(self) -> None:
        self._file.close()
        super().close()


class _WeightReads:
    """Every way this process reads a safetensors file's tensor bytes, refused for `files` (their headers stay
    readable): safetensors' own reader wherever a module imported it, Python's open and io.open (np.memmap and
    safetensors.torch.load's bytes go through the one, Path.open and Path.read_bytes through the other), io.FileIO,
    mmap, os.read and numpy's and torch's readers of a path."""

    def __init__(self, files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
        import mmap
        import sys

        import numpy as np

        self._data_start = {}
        for file in files:
            with _REAL_OPEN(file, "rb") as f:
                self._data_start[os.path.realpath(file)] = 8 + int.from_bytes(f.read(8), "little")
        for module in list(sys.modules.values()):
            if getattr(module, "safe_open", None) is _REAL_SAFE_OPEN:
                monkeypatch.setattr(module, "safe_open", _HeaderOnly)
        monkeypatch.setattr("builtins.open", self._open)
        monkeypatch.setattr(io, "open", self._open)  # a name of its own: pathlib's Path.open calls io.open
        guarded = self

        class WholeFileRefused(io.FileIO):  # a file opened as a FileIO reads past the header unchecked
            def __init__(self, file, *args, **kwargs):
                super().__init__(file, *args, **kwargs)
                guarded._refuse_fd(self.fileno(), "opened as a FileIO")

        monkeypatch.setattr(io, "FileIO", WholeFileRefused)

        class HeaderOnlyMmap(mmap.mmap):  # a subclass: numpy and gguf-py check isinstance(..., mmap.mmap)
            def __new__(cls, fileno, *args, **kwargs):
                guarded._refuse_fd(fileno, "mapped")
                return super().__new__(cls, fileno, *args, **kwargs)

        monkeypatch.setattr(mmap, "mmap", HeaderOnlyMmap)
        for module, name in ((os, "read"), (os, "pread"), (os, "preadv"), (os, "readv")):
            monkeypatch.setattr(module, name, self._fd_reader(getattr(module, name)))
        for module, name in ((np, "fromfile"), (torch, "from_file")):
            monkeypatch.setattr(module, name, self._path_reader(getattr(module, name)))

    def _guarded(self, path) -> int | None:
        try:
            return self._data_start.get(os.path.realpath(os.fspath(path)))
        except TypeError:  # not a path: a file object
            return None

    def _refuse_fd(self, fd: int, how: str) -> None:  # the whole file: read_header reads through open
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no such descriptor (-1: an anonymous map): the call itself reports it
            return
        if self._guarded(path) is not None:
            pytest.fail(f"the tensor bytes of a safetensors file were {how}")

    def _open(self, file, mode="r", *args, **kwargs):
        if isinstance(file, int):  # a descriptor os.open gave: its reads are FileIO's, past the header unchecked
            self._refuse_fd(file, "opened by descriptor")
        data_start = self._guarded(file) if isinstance(file, (str, os.PathLike)) else None
        if data_start is None:
            return _REAL_OPEN(file, mode, *args, **kwargs)
        if not set(mode) <= set("rb"):
            pytest.fail(f"{file} was opened to write ({mode!r})")
        raw = _HeaderBytesOnly(Path(file), data_start)
        return io.BufferedReader(raw) if "b" in mode else io.TextIOWrapper(io.BufferedReader(raw))

    def _fd_reader(self, read):
        def guarded_read(fd, *args, **kwargs):
            self._refuse_fd(fd, "read")
            return read(fd, *args, **kwargs)

        return guarded_read

    def _path_reader(self, read):
        def guarded_read(file, *args, **kwargs):
            if self._guarded(file) is not None:
                pytest.fail(f"the tensor bytes of {file} were read")
            return read(file, *args, **kwargs)

        return guarded_read


def _meta_packed_tensor(packed_tensor):
    """gguf_file._packed_tensor with the tensor's bytes on the meta device: its size, type and shape stay, any read
    of its values fails."""

    def on_meta(path, t):
        packed = packed_tensor(path, t)
        return dataclasses.replace(packed, data=packed.data.to("meta"))

    return on_meta


def test_check_reads_no_weights(shared_checkpoint_and_gguf, no_weights, monkeypatch, capsys):
    # README, "Use": "`motif-lite check` reads no weights": its checks of names, shapes and completeness come from
    # the files' headers. The checkpoint's tensor bytes are refused however they are read (`_WeightReads`), the
    # GGUF's tensors have no values (the meta device), and a component loaded fails (`no_weights`).
    from motif_lite.weights import gguf_file

    root, gguf = shared_checkpoint_and_gguf
    _WeightReads(sorted(root.rglob("*.safetensors")), monkeypatch)
    monkeypatch.setattr(gguf_file, "_packed_tensor", _meta_packed_tensor(gguf_file._packed_tensor))
    monkeypatch.setattr(gguf_file.PackedTensor, "dequantize", lambda *a, **k: pytest.fail("a GGUF tensor was read"))
    for flags in ([], ["--gguf", str(gguf)]):
        assert cli.main(["check", "-m", str(root), *flags]) == 0, capsys.readouterr()
        out = capsys.readouterr().out
        assert "check: 0 problem(s)" in out and "names and shapes match" in out, out


TRANSFORMER_DOC = Path(__file__).resolve().parent.parent / "docs/transformer.md"


@pytest.fixture(scope="module")
def full_models_on_meta():
    """diffusers' MotifVideoTransformer3DModel and ours at the official architecture, on the meta device (no
    memory: only the FLOPs of their forwards are counted)."""
    from full_size import reference_on_meta

    from motif_lite.config import TransformerConfig
    from motif_lite.model.transformer import MotifVideoTransformer

    with torch.device("meta"):
        ours = MotifVideoTransformer(TransformerConfig()).eval()
    return reference_on_meta().eval(), ours


@pytest.mark.slow  # two full-size forwards of each model on the meta device: ~10 s each
@pytest.mark.parametrize(("size", "latent"), [("1280x736x121", (31, 92, 160)), ("832x480x49", (13, 60, 104))])
def test_the_flops_the_last_decoder_block_saves_are_what_docs_transformer_says(full_models_on_meta, size, latent):
    # docs/transformer.md, "One thing computed less than the reference": "It saves 3.2 % of a forward's FLOPs at
    # 1280x736x121 and 2.8 % at 832x480x49 (..., 512 text tokens ...)", and docs/benchmarks.md ("CPU time") the
    # FLOPs before and after. Counted by torch's FLOP counter on both models, not by our cost model.
    from torch.utils.flop_counter import FlopCounterMode

    reference, ours = full_models_on_meta
    with torch.device("meta"):
        latents, timestep, text = torch.randn(1, 33, *latent), torch.ones(1), torch.randn(1, 512, 2560)
    flops = []
    for forward in (lambda: reference(latents, timestep, text).sample, lambda: ours(latents, timestep, text)):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            forward()
        flops.append(counter.get_total_flops())
    page = " ".join(TRANSFORMER_DOC.read_text().split())
    saved = re.search(r"It saves ([\d.]+) % of a forward's FLOPs at 1280x736x121 and ([\d.]+) % at 832x480x49", page)
    assert saved, "docs/transformer.md no longer gives the saving in the words this test reads"
    said = float(saved.group(1 if size == "1280x736x121" else 2))
    assert round(100 * (1 - flops[1] / flops[0]), 1) == said, flops
    before, after = (f"{n:.2e}".replace("e+", "e") for n in flops)
    assert f"{before} -> {after}" in _benchmarks_section("CPU time") or (
        size == "1280x736x121"
        and f"{before} FLOPs; it now computes the decoder's N only, {after}"
        in " ".join(_benchmarks_section("CPU time").split())
    ), (before, after)


def test_the_readmes_test_suite_time_is_the_latest_clean_clone_run():
    # README.md, "Set-up": the test command's time on 2 cores spans the latest `bash .ci/run` of a clean clone that
    # docs/benchmarks.md, "The test suite itself", records (the README said ~10 min when runs took 15-18 min).
    low, high = _numbers_in(README.read_text(), rf"run the suite \(CPU only, {NUMBER}-{NUMBER} min on 2 cores\)")
    runs = BENCHMARKS.read_text().split("**The test suite itself**", 1)[1].split("\n\n", 1)[0]
    minutes, seconds = re.findall(r"\((\d+) min (\d+) s in all\)", " ".join(runs.split()))[-1]
    assert low <= int(minutes) + int(seconds) / 60 <= high


def test_the_readmes_sizes_table_is_the_architectures():
    # README.md, "What you need": each component's parameter count and size as the official architecture gives them,
    # our GGUF recipes' sizes, and the download with a Q4_K_M GGUF or the bf16 transformer (to the digits shown).
    from motif_lite.config import TransformerConfig
    from motif_lite.sizes import OFFICIAL_TEXT_ENCODER_PARAMS, estimated_gguf_bytes, transformer_weights
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.vae.model import WanVAE

    with torch.device("meta"):
        vae = sum(p.numel() for p in WanVAE(WanVAEConfig()).parameters())
    counts = {"transformer": transformer_weights(TransformerConfig()), "text encoder": OFFICIAL_TEXT_ENCODER_PARAMS}
    counts["VAE"] = vae
    text = " ".join(README.read_text().split("## What you need", 1)[1].split("\n## ", 1)[0].split())
    for name, count in counts.items():
        params, bf16 = _numbers_in(text, rf"\| {name}[^|]* \| {NUMBER} \| {NUMBER} GB in bf16")
        assert (params, bf16) == (count, round(2 * count / 1e9, 2)), name
    (vae_fp32,) = _numbers_in(text, rf"\({NUMBER} GB if stored in fp32\)")
    assert vae_fp32 == round(4 * vae / 1e9, 2)
    recipes = re.findall(r"(Q\w+) ([\d.]+) GB", text.split("our GGUF recipes:", 1)[1].split("|", 1)[0])
    assert len(recipes) == 4, recipes
    gguf = {name: estimated_gguf_bytes(TransformerConfig(), name)[0] for name, _ in recipes}
    assert all(float(size) == round(gguf[name] / 1e9, 2) for name, size in recipes), (recipes, gguf)
    with_q4, with_bf16 = _numbers_in(text, rf"about {NUMBER} GB with a Q4_K_M GGUF .*? about {NUMBER} GB with the bf16")
    rest = 2 * (counts["text encoder"] + vae)  # the configs and tokenizer are a few MB
    assert with_q4 == round((rest + gguf["Q4_K_M"]) / 1e9)
    assert with_bf16 == round((rest + 2 * counts["transformer"]) / 1e9)


def _low_memory_rows() -> dict[tuple[str, str], list[float]]:
    """docs/benchmarks.md, "Low-memory plans", the measured table: (run, stage) -> its numbers (estimate, allocated,
    reserved, ratio, seconds; as many as the row has)."""
    table = _benchmarks_section("Low-memory plans").split("| run | stage |", 1)[1].split("\n\n", 1)[0]
    rows, run = {}, ""
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        run = cells[0] or run
        numbers = [float(n) for cell in cells[2:] for n in re.findall(r"\d+(?:\.\d+)?", cell.split("GiB")[0])[:1]]
        rows["resident" if run == "all resident" else "planned", cells[1].split(" (")[0].split(" + ")[0]] = numbers
    return rows


def test_the_readmes_measured_time_and_memory_of_the_720p_run_are_the_low_memory_table():
    # README.md, "GPU memory", "Time" and "Host RAM": the H200 run's peaks, "every stage came within 10 % of the
    # planner's estimate", the stage times and the 50-step projections (encode + 50 x step + decode, as
    # docs/benchmarks.md projects them) are the "Low-memory plans" table's; the 480p step against diffusers' is
    # the "Speed features" table's.
    rows = _low_memory_rows()
    text = " ".join(README.read_text().split("## What you need", 1)[1].split("\n## ", 1)[0].split())
    allocated, reserved = _numbers_in(text, rf"peaked at \*\*{NUMBER} GiB allocated, {NUMBER} GiB reserved\*\*")
    assert [allocated, reserved] == rows["planned", "denoise"][1:3]
    (within,) = _numbers_in(text, rf"every stage came within {NUMBER} % of the planner's estimate")
    ratios = [rows["planned", stage][3] for stage in ("encode", "denoise", "decode")]
    assert max(abs(ratio - 1) for ratio in ratios) * 100 <= within
    encode, step, decode, minutes = _numbers_in(
        text,
        rf"encode {NUMBER} s, \*\*{NUMBER} s for a step\*\* .*? decode and writing 121 PNG frames {NUMBER} s; "
        rf"about {NUMBER} minutes for the official 50 steps",
    )
    assert [encode, step, decode] == [rows["planned", stage][-1] for stage in ("encode", "denoise", "decode")]
    assert minutes == round((encode + 50 * step + decode) / 60)
    step, minutes = _numbers_in(text, rf"All resident: {NUMBER} s for the step, about {NUMBER} minutes")
    encode, resident_step, decode = [rows["resident", stage][-1] for stage in ("encode", "denoise", "decode")]
    assert step == resident_step and minutes == round((encode + 50 * resident_step + decode) / 60, 1)
    ours, theirs = _numbers_in(text, rf"resident, a step took {NUMBER} s against diffusers' {NUMBER} s")
    speed = _benchmarks_section("Speed features")
    (diffusers_step,) = _numbers_in(speed, rf"\| diffusers `MotifVideoPipeline`, resident \| {NUMBER} \|")
    (our_step,) = _numbers_in(speed, rf"\| ours, bf16 resident, batched guidance, `auto` attention \| {NUMBER} \|")
    assert [ours, theirs] == [round(our_step, 2), round(diffusers_step, 2)]
    measured, estimate = _numbers_in(text, rf"peaked at {NUMBER} GiB RSS \(estimate then {NUMBER};")
    assert [estimate, measured] == [round(n, 1) for n in rows["planned", "host RSS"][:2]]


def test_the_batched_guidance_peak_the_readme_gives_is_the_dry_runs(no_network, no_weights, capsys):
    # README.md, "GPU memory", and docs/benchmarks.md, "Sizes": batching the guidance predictions "takes the
    # all-resident 1280x736x121 plan to 21.48 GiB", as `motif-lite run --dry-run --device cuda --vram 30 --gguf
    # Q4_K_M` plans it (both guidance predictions in one forward).
    (readme,) = _numbers_in(README.read_text(), rf"all-resident 1280x736x121 plan to {NUMBER} GiB")
    (sizes,) = _numbers_in(_benchmarks_section("Sizes"), rf"Q4_K_M recipe, {NUMBER} GiB")
    assert cli.main(["run", "--dry-run", "--device", "cuda", "--vram", "30", "--gguf", "Q4_K_M", "-p", "x"]) == 0
    out = capsys.readouterr().out
    assert "2 rows per transformer forward" in out, out
    assert readme == sizes == float(re.search(r"device peak (\S+) GiB allocated", out).group(1))


DOCS = Path(__file__).resolve().parent.parent / "docs"
# Passages of the docs that give measured figures from docs/benchmarks.md: (page, first words, words after the
# passage, the benchmarks sections its figures come from).
MEASURED_PASSAGES = [
    ("kernels.md", "Why two: on an H200", "`dequant_matmul(..., path=", ["Kernels, second versions"]),
    ("kernels.md", "**Which backend wins is measured on one GPU only**", "For another GPU run", ["Speed features"]),
    ("kernels.md", "**When to choose it.**", "It changes the output", ["8-bit attention"]),
    ("kernels.md", "Its first version loaded the pairs", "**Global memory accesses", ["Speed features"]),
    ("transformer.md", "Not timed on its own:", "A sequence-parallel run", ["8-bit attention"]),
    ("usage.md", "| `--attention-backend auto` (default) |", "| `--compile` |", ["Speed features"]),
    ("usage.md", "| `--attention int8` | 8-bit attention on GPUs", "|", ["8-bit attention"]),
    ("usage.md", "The summary says `step cache: K of N", "How to pick the threshold", ["Speed features"]),
    ("usage.md", "sampling only waits for the projection:", "Device memory:", ["Previews"]),
    ("memory.md", "**Measured on an H200** (2026-11-30", "## Planner accuracy", ["Low-memory plans"]),
    ("memory.md", "On an H200, the whole 720p text-to-video per stage", "`pytest bench/", ["Low-memory plans"]),
    ("memory.md", "Transfer cost (measured on an H100 at 720p:", ": a block of our", ["GPU check (H100)"]),
    ("memory.md", "- the process: 0.55 GiB", "Streamed blocks get", ["Planner accuracy", "Low-memory plans"]),
    ("memory.md", "yourself) the gap stays small:", "Without `--vram` the budget", ["Low-memory plans"]),
    ("kernels.md", "tens of seconds at 720p (the first version took", "On GPUs whose", ["8-bit attention"]),
    ("kernels.md", "on an H200 the revised kernel with FP8 P·V ran", "a few percent of a step", ["8-bit attention"]),
    ("memory.md", "| stage | measured peak (allocated) |", "The estimates then", ["Whole text-to-video"]),
    ("vae.md", "| decode | working set per output pixel |", "`frame_by_frame=False` is", ["VAE decode, 1280x736x121"]),
    ("vae.md", "| decode, 256x256x17 | time |", "### Exact bands for the encoder", ["VAE"]),
    ("vae.md", "decodes one 256 x 256-pixel tile through all frames", "- `vae.decode_frames(z, tile=", ["VAE"]),
    ("gguf.md", "| file and host memory (our recipes) |", "- **GPU memory", ["Quantizer"]),
    ("gguf.md", "- **Speed hardly changes.**", "- **Quality", ["Kernels, second versions"]),
    ("gguf.md", "How long it takes (docs/", "A GPU run searches", ["Quantizing as it loads", "Full 2.04B"]),
    ("gguf.md", "**Memory while it quantizes.**", "The pages read stay", ["Quantizing as it loads"]),
    ("quantize.md", "| class | share of weights | output error |", "- embedders", ["Quantizer"]),
    ("quantize.md", "Result at small size (output error vs fp32):", "The measured per-class", ["Quantizer"]),
    ("quantize.md", "Expect ~7-12 minutes for Q4_K_M", "The progress bar", ["Quantizer", "Full 2.04B architecture"]),
    ("quantize.md", "| recipe | relative RMSE of the embeddings |", "**Tiny encoders**", ["The text encoder"]),
    ("quantize.md", "| encoding a prompt |", "Encoding reads", ["The text encoder"]),  # the rows above: differences
    ("server.md", "On the 2-core machine of this project's CI,", "Unmeasured on a GPU", ["Server: status polls"]),
    (
        "parallel.md",
        "With one 720p forward taking",
        "| GPUs | layout |",
        ["GPU check (H100)", "8-bit attention", "Whole text-to-video"],
    ),  # fmt: skip
]


@pytest.mark.parametrize(("page", "start", "end", "sections"), MEASURED_PASSAGES)
def test_each_measured_figure_of_the_docs_is_in_the_benchmarks_section_it_comes_from(page, start, end, sections):
    # The pages that quote a benchmark: each decimal figure (GiB, GB, MB, ms, s, x, %) of the passage is, to the
    # digits shown, a number of the section of docs/benchmarks.md it comes from (docs/kernels.md and docs/usage.md
    # still gave the first 8-bit kernel's speed as the only one after the revised kernel had been timed).
    text, start, end = (" ".join(words.split()) for words in ((DOCS / page).read_text(), start, end))
    assert text.count(start) == 1 and end in text.split(start, 1)[1], (page, start, end)
    passage = text.split(start, 1)[1].split(end, 1)[0]
    assert FIGURE.search(passage) or DECIMAL.search(passage), (page, start)
    assert _figures_missing_from(passage, sections, every_decimal=True) == [], (page, start)


def test_the_communication_and_scaling_tables_of_docs_parallel_follow_their_formula():
    # docs/parallel.md, "Communication per step at 720p" and "Expected scaling": each row is the page's own model
    # computed for the official architecture at 1280x736x121 with 512 text tokens (the all-to-all of q, k, v and
    # the output per attention, the context's all-gather in the 28 joint attentions, the gather before the head),
    # and each step time and speed-up is T1 / sp + the volume / the bandwidth, against 2 T1 on one GPU.
    from motif_lite.config import TransformerConfig

    config = TransformerConfig()
    n, text, width = 31 * (736 // 16) * (1280 // 16), 512, config.hidden_size  # video tokens after the 1x2x2 patches
    encoder = config.num_layers + config.num_encoder_single_layers
    decoder = config.num_decoder_layers
    page = PARALLEL.read_text()
    section = page.split("## Communication per step at 720p", 1)[1].split("\n## ", 1)[0]
    assert _numbers_in(section, rf"N = {NUMBER} video tokens, hidden {NUMBER}, {NUMBER} encoder attentions over N "
                       rf"tokens and {NUMBER} decoder attentions") == [n, width, encoder, decoder]  # fmt: skip
    totals = {}
    for sp, *cells in re.findall(r"^\| (\d+) \| ([\d.]+) GB \| (\d+) MB \| (\d+) MB \| ([\d.]+) GB \|$", section, re.M):
        sp, share = int(sp), (int(sp) - 1) / int(sp)
        all_to_all = (encoder * 4 * n + decoder * 4 * 2 * n) / sp * width * 2 * share
        context = encoder * text * width * 2 * share
        head = n * width * 2 * share
        computed = [round(all_to_all / 1e9, 2), round(context / 1e6), round(head / 1e6)]
        assert [float(c) for c in cells[:3]] == computed, sp
        totals[sp] = (all_to_all + context + head) / 1e9
        assert float(cells[3]) == round(totals[sp], 1), sp
    assert sorted(totals) == [2, 3, 4, 6, 12]
    scaling = page.split("## Expected scaling", 1)[1].split("\n## ", 1)[0]
    from motif_lite.runtime.cost import transformer_flop_parts

    flops = transformer_flop_parts(config, n, text)
    share, petaflops = _numbers_in(scaling, rf"attention is ~{NUMBER} % of the ~{NUMBER} PFLOP of a 720p forward")
    assert (share, petaflops) == (round(100 * flops.attention / flops.total), round(flops.total / 1e15))
    (t1,) = _numbers_in(scaling, rf"taking T1 = {NUMBER} s")
    bandwidths = rf"NVLink, ~{NUMBER} GB/s .*? PCIe, ~{NUMBER} GB/s .*? {NUMBER} GB/s per"
    nvlink, pcie, nodes = _numbers_in(scaling, bandwidths)
    checked = 0
    for gpus, sp, *cells in re.findall(r"^\| (\d) \| cfg 2(?: x sp (\d))? \| (.*) \|$", scaling, re.M):
        sp = int(sp or 1)
        for cell, bandwidth in zip(cells[0].split(" | "), (nvlink, pcie, nodes), strict=True):
            if cell == "(one machine)":
                continue
            step = t1 / sp + (totals[sp] / bandwidth if sp > 1 else 0)
            seconds, speedup = re.match(r"([\d.]+) s(?:/step)?, ([\d.]+)x", cell).groups()
            assert float(seconds) == round(step, len(seconds.split(".")[1])), (gpus, cell)
            assert float(speedup) == round(2 * t1 / step, len(speedup.split(".")[1])), (gpus, cell)
            checked += 1
    assert checked == 8, scaling
    slow, four, eight = _numbers_in(scaling, rf"T1 ≈ {NUMBER} s .*? gives {NUMBER}x on 4 and {NUMBER}x on 8 GPUs")
    for sp, said in ((2, four), (4, eight)):
        assert said == round(2 * slow / (slow / sp + totals[sp] / pcie), 1), sp


@pytest.mark.parametrize(
    ("page", "pattern", "constant"),
    [
        (README, rf"asks before anything longer than ~{NUMBER} minutes", "LONG_CPU_RUN_SECONDS"),
        (USAGE, rf"start a CPU run estimated at over {NUMBER} minutes without asking", "LONG_CPU_RUN_SECONDS"),
        (USAGE, rf"Over ~{NUMBER} minutes it prints the estimate and asks", "LONG_CPU_RUN_SECONDS"),
        (USAGE, rf"a CPU run estimated at more than ~{NUMBER} minutes", "LONG_CPU_RUN_SECONDS"),
        (
            USAGE,
            rf"\*\*On a GPU\*\* nothing is asked, but a run estimated at over {NUMBER} minutes",
            "LONG_GPU_RUN_SECONDS",
        ),
        (USAGE, rf"a run saves its state every {NUMBER} minutes of sampling", "SAVE_STATE_EVERY_SECONDS"),
        (USAGE, rf"such a crash costs at most {NUMBER} minutes", "SAVE_STATE_EVERY_SECONDS"),
    ],
)
def test_the_minutes_the_docs_give_for_a_runs_questions_and_saves_are_the_codes(page, pattern, constant):
    # README.md, "What you need" ("The CPU is for tests"), and docs/usage.md: when a run asks or warns before it
    # starts, and how often it saves its state, in the minutes of the constants that decide it.
    from motif_lite import keeping, run_estimates

    seconds = getattr(run_estimates, constant, None) or getattr(keeping, constant)
    assert _numbers_in(page.read_text(), pattern) == [seconds / 60]


def test_the_sdks_deprecation_warning_is_quoted_as_the_sdk_gives_it_and_the_filter_docs_give_silences_it():
    # A new user's script with openai 3.63 prints this warning for each client.videos call: docs/server.md quotes it
    # and gives the filter; both must match the SDK installed (older SDKs give no warning: nothing to check).
    import warnings

    openai = pytest.importorskip("openai")
    docs = (Path(__file__).parent.parent / "docs" / "server.md").read_text()
    quoted = re.search(r"`DeprecationWarning: (The Sora API[^`]*)`", docs.replace("\n", " ")).group(1)
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(openai.APIConnectionError):  # port 9 (discard): nothing answers
            client.videos.retrieve("video_0")
    given = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    if not given:
        pytest.skip(f"openai {openai.__version__} gives no deprecation warning")
    assert given == [quoted]
    line = re.search(r"`(warnings\.filterwarnings\([^`]*\))`", docs).group(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eval(line)  # the docs' line, as a user runs it
        with pytest.raises(openai.APIConnectionError):
            client.videos.retrieve("video_0")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


def test_the_installed_sdk_cannot_send_a_video_id_to_extend_as_docs_server_says():
    # docs/server.md, "With the SDK's extend": openai 3.57 to 3.63 takes any `video` for a file and raises before
    # sending, hence `extra_body`. An SDK that sends the id makes that paragraph wrong: this then fails.
    import warnings

    openai = pytest.importorskip("openai")
    assert 'openai 3.57 to 3.63 cannot send `video={"id": ...}` itself' in " ".join(SERVER.read_text().split())
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(RuntimeError, match="Expected entry at `video` to be bytes"):
            client.videos.extend(prompt="next", seconds="4", video={"id": "video_" + "0" * 32})


def test_the_cpu_time_of_the_default_video_the_docs_give_is_the_runs_estimate(
    no_network, no_weights, capsys, monkeypatch
):
    # README.md, "The CPU is for tests": the default 720p video "would take weeks to months"; docs/usage.md, "On the
    # CPU": it "is ~5 x 10^17 FLOPs, months at the 20-60 GFLOP/s of a 2-core machine"; docs/benchmarks.md, "CPU
    # time": "4.9e17 FLOPs, ~100 days at 60 GFLOP/s". Each is what a dry run on the CPU estimates at those speeds;
    # "weeks" at the fastest speed that section's CPU runs reached.
    from motif_lite.runtime import cost

    def estimate(gflops: float) -> tuple[float, float]:
        """The FLOPs and days the dry run's note gives the official video on a CPU doing `gflops`."""
        monkeypatch.setattr(cost, "measure_matmul_flops", lambda *args, **kwargs: gflops * 1e9)
        assert cli.main(["run", "--dry-run", "--device", "cpu", "--gguf", "Q4_K_M", "-p", "a fox"]) == 0
        said = " ".join("".join(capsys.readouterr()).split())
        found = re.search(rf"is ([\d.]+e\+\d+) FLOPs: about (\d+) days at the {gflops:.0f} GFLOP/s", said)
        assert found, said
        return float(found.group(1)), float(found.group(2))

    assert "the default 720p video would take weeks to months" in " ".join(README.read_text().split())
    mantissa, exponent, slow, fast = _numbers_in(
        USAGE.read_text(), rf"the default 720p video is ~{NUMBER} x 10\^{NUMBER} FLOPs, months at the {NUMBER}-{NUMBER}"
    )
    section = _benchmarks_section("CPU time")
    flops_said, days_said, rate_said = _numbers_in(
        section, rf"the default 720p video is {NUMBER} FLOPs, ~{NUMBER} days at {NUMBER} GFLOP/s"
    )
    fastest = max(float(n) for n in re.findall(r"\| (\d+) GFLOP/s \|", section))
    (flops, days), (_, slow_days), (_, fast_days) = estimate(rate_said), estimate(slow), estimate(fastest)
    assert f"{flops:.0e}" == f"{mantissa:.0f}e+{exponent:.0f}" and f"{flops:.1e}" == f"{flops_said:.1e}"
    assert abs(days - days_said) <= 0.1 * days_said  # "~100 days"
    assert all(30 <= d < 365 for d in (days, slow_days)) and fast == rate_said  # months at 20-60 GFLOP/s
    assert fast_days >= 14 and slow_days >= 60  # weeks (44 days) at the fastest, months (285) at the slowest


def test_the_official_values_the_readme_and_docs_usage_give_are_the_defaults():
    # README.md, "Use" ("else the official recommended value: 1280x736, 121 frames at 24 fps, 50 Euler steps, shift
    # 15 for text-to-video and 8 for image-to-video ... APG guidance 8.0 (norm threshold 12, momentum 0.1)") and
    # docs/usage.md's first section: what a request without flags or checkpoint configs resolves to.
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.request import GenerationRequest
    from motif_lite.settings import resolve_settings

    request = GenerationRequest("x")
    settings = resolve_settings(request, CheckpointConfigs())
    image_shift = resolve_settings(GenerationRequest("x", image="a.png"), CheckpointConfigs()).flow_shift.value
    apg = settings.guidance.value
    assert settings.sampler.value == "euler" and apg.original_formulation  # "Euler", "APG"
    size = [request.width, request.height, request.frames, request.fps, request.steps]
    said = _numbers_in(
        README.read_text(),
        rf"official recommended value: {NUMBER}x{NUMBER}, {NUMBER} frames at {NUMBER} fps, {NUMBER} Euler steps, "
        rf"shift {NUMBER} for text-to-video and {NUMBER} for image-to-video .*? APG guidance {NUMBER} \(norm "
        rf"threshold {NUMBER}, momentum {NUMBER}\)",
    )
    assert said == [*size, settings.flow_shift.value, image_shift, apg.scale, apg.norm_threshold, apg.momentum]
    said = _numbers_in(
        USAGE.read_text(),
        rf"official recommended values: {NUMBER}x{NUMBER}, {NUMBER} frames \({NUMBER} s at {NUMBER} fps\), {NUMBER} "
        rf"Euler steps with flow shift {NUMBER}, adaptive projected guidance \(APG\) scale {NUMBER} with norm "
        rf"threshold {NUMBER} and momentum {NUMBER}",
    )
    seconds = round(request.frames / request.fps)
    assert said == [
        *size[:3],
        seconds,
        *size[3:],
        settings.flow_shift.value,
        apg.scale,
        apg.norm_threshold,
        apg.momentum,
    ]


def test_the_versions_the_readme_requires_are_pyprojects():
    # README.md, "Python packages": "Python 3.10 or newer (3.11 for the `verify` and test extras: their diffusers
    # needs it), torch 2.6 or newer ..., transformers 5.6 to 5.24 ... and huggingface_hub 1.5 or newer".
    import importlib.metadata

    import tomllib

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    bounds = {re.match(r"[\w-]+", d).group(): d for d in project["dependencies"]}
    text = " ".join(README.read_text().split("- **Python packages**", 1)[1].split("\n\n", 1)[0].split())
    versions = r"Python (\S+) or newer \((\S+) for the `verify` and test extras: .*? torch (\S+) or newer .*? "
    versions += r"transformers (\d+)\.(\d+) to \4\.(\d+) .*? huggingface_hub (\S+) or newer"
    python, extras_python, torch_low, major, low, high, hub = re.search(versions, text).groups()
    assert project["requires-python"] == f">={python}"
    assert bounds["torch"] == f"torch>={torch_low}" and bounds["huggingface_hub"] == f"huggingface_hub>={hub}"
    assert bounds["transformers"] == f"transformers>={major}.{low},<{major}.{int(high) + 1}"
    diffusers = [d for d in project["optional-dependencies"]["verify"] if d.startswith("diffusers")]
    assert diffusers and any(d.startswith("diffusers") for d in project["optional-dependencies"]["test"])
    requires = importlib.metadata.metadata("diffusers")["Requires-Python"]  # the test extra installs it
    assert re.fullmatch(r">=\s*(\d+\.\d+)(?:\.0)?", requires).group(1) == extras_python


def test_the_readmes_last_gpu_suite_run_is_the_latest_the_benchmarks_record():
    # README.md, "Platforms": the GPU suite "run by hand: CI has no GPU; last run on an H200 on DATE" is the latest
    # run that docs/benchmarks.md, "Running the benchmarks", records (a new run must move the README's date too).
    (said,) = re.findall(r"last run on an (\S+) on (\d{4}-\d\d-\d\d)", " ".join(README.read_text().split()))
    recorded = " ".join(_benchmarks_section("Running the benchmarks").split())
    gpu, dates = re.search(
        r"\*\*On a GPU so far \((\w+), [^)]*?((?:\d{4}-\d\d-\d\d(?: and )?)+)\):\*\*", recorded
    ).groups()
    latest = max(re.findall(r"\d{4}-\d\d-\d\d", dates))
    assert said == (gpu, latest) and f"most of the GPU suite ({latest}:" in recorded


def test_the_dry_runs_docs_memory_shows_are_what_it_prints(no_network, no_weights, capsys):
    # docs/memory.md, "The plans": "The accepted plans, as printed on this machine": the first `$ motif-lite run
    # --dry-run` block is the command's output line for line, the second gives its stages' and peak's figures, and
    # "How the 6 GB 720p plan comes about" quotes the first one's activations and peaks, and the Q4_K_M size.
    import shlex

    from motif_lite.config import TransformerConfig
    from motif_lite.sizes import estimated_gguf_bytes

    text = MEMORY.read_text()
    section = text.split("## The plans", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^    \$ motif-lite (.*)\n((?:    (?!\$).*\n)+)", section, re.M)
    assert len(blocks) == 2, blocks

    def printed(command: str) -> str:
        assert cli.main([*shlex.split(command), "-p", "x"]) == 0
        return capsys.readouterr().out

    (whole, shown), (abridged, figures) = blocks
    out = printed(whole)
    assert [line[4:] for line in shown.splitlines() if line[4:] not in out.splitlines()] == []
    stages = re.findall(r"^(?:encode|denoise|decode) +(\S+) GiB +(\S+) GiB +(\S+) (GiB|MiB)", out, re.M)
    peak = re.search(r"device peak (\S+) GiB allocated", out).group(1)
    numbers = _numbers_in(
        figures,
        rf"encode {NUMBER} GiB, denoise {NUMBER} GiB, decode {NUMBER} GiB: device peak {NUMBER} GiB allocated, "
        rf"~{NUMBER} GiB reserved",
    )
    abridged_out = printed(abridged)
    plan = re.search(r"device peak (\S+) GiB allocated .*~(\S+) GiB reserved", abridged_out)
    abridged_stages = re.findall(r"^(?:encode|denoise|decode) +(\S+) GiB", abridged_out, re.M)
    assert numbers == [float(n) for n in [*abridged_stages, *plan.groups()]], abridged_out
    worked = " ".join(section.split("How the 6 GB 720p plan comes about:", 1)[1].split("\n\n", 1)[0].split())
    activations, transformer, denoise = _numbers_in(
        worked, rf"→ {NUMBER} GiB of activations; \+ the resident transformer \({NUMBER} GiB\).*? = {NUMBER} GiB\."
    )
    decode_activations, decode = _numbers_in(worked, rf"mid-block outputs = {NUMBER} GiB next to .*? → {NUMBER} GiB")
    (encode,) = _numbers_in(worked, rf"next to the resident transformer and VAE → {NUMBER} GiB")
    assert [activations, decode_activations] == [float(stages[1][2]), float(stages[2][2])]
    assert [encode, denoise, decode] == [float(stage[0]) for stage in stages] and denoise == float(peak)
    q4_gib = estimated_gguf_bytes(TransformerConfig(), "Q4_K_M")[0] / 2**30
    (intro,) = _numbers_in(text, rf"the Q4_K_M size estimated from our quantizer's recipe, {NUMBER} GiB")
    assert intro == transformer == round(q4_gib, 2)


@pytest.mark.parametrize(
    ("page", "pattern", "flags"),
    [
        (USAGE, r"with the bf16 transformer, `(error: 1280x736x121 needs at least .*?)`", []),
        (MEMORY, r'at `--vram 3` "(At this budget .*? free on the GPU)"', ["--vram", "3", "--gguf", "Q4_K_M"]),
    ],
)
def test_the_refusals_the_docs_quote_are_what_a_dry_run_prints(no_network, no_weights, capsys, page, pattern, flags):
    # docs/usage.md, "Dry runs" ("for example, with the bf16 transformer, `error: 1280x736x121 needs at least ...`")
    # and docs/memory.md ("A video that cannot fit", at `--vram 3`): each part of the quoted error between its
    # "(...)" or "..." is what a dry run at that budget prints (usage.md said 3.22, 3.23 and 3.49 GiB after the
    # planner had come to 3.21, 3.21 and 3.47).
    quoted = re.search(pattern, " ".join(page.read_text().split())).group(1)
    budget = flags or ["--vram", str(_numbers_in(quoted, rf"but the budget is {NUMBER} GiB")[0])]
    assert cli.main(["run", "--dry-run", "--device", "cuda", *budget, "-p", "x"]) == cli.EXIT_USER_ERROR
    err = " ".join(capsys.readouterr().err.split())
    parts = [part.strip() for part in re.split(r"\(\.\.\.\)|\.\.\.", quoted) if part.strip()]
    assert len(parts) >= 2 and [part for part in parts if part not in err] == [], err


@pytest.mark.parametrize(("page", "flags"), [(SERVER, ["--gguf", "Q4_K_M"]), (USAGE, [])])
def test_the_out_of_memory_examples_give_the_plans_a_dry_run_makes(no_network, no_weights, capsys, page, flags):
    # docs/server.md, "The API" (a job out of device memory, Q4_K_M), and docs/usage.md, "Sampling stopped" (the
    # bf16 transformer): the plan the example names at its budget, its estimated peaks, and the next plan down at the
    # `--vram` it gives, with the blocks that plan streams, are what `motif-lite run --dry-run` plans at 1280x736x121.
    example = re.search(
        r"\((\d+) of 256\) had a budget of (\S+) GiB .*? est\. peak of (\S+) GiB allocated \(~(\S+) GiB reserved\).*? "
        r"--vram (\S+) \(just under that peak\).*? the next plan, (\d+): est\. peak (\S+) GiB allocated of the \5 GiB "
        r"budget .*? (\d+) of 36 transformer blocks streamed",
        " ".join(page.read_text().split()),
    ).groups()

    def planned(vram: str) -> tuple[str, ...]:
        assert cli.main(["run", "--dry-run", "--device", "cuda", "--vram", vram, *flags, "-p", "x"]) == 0
        out = capsys.readouterr().out
        plan = re.search(r"plan (\d+) of 256", out).group(1)
        peaks = re.search(r"device peak (\S+) GiB allocated .*~(\S+) GiB reserved", out).groups()
        streamed = re.search(r"(\d+) of 36 transformer blocks streamed", out)
        return plan, *peaks, streamed.group(1) if streamed else "0"

    first, budget, peak, reserved, vram, second, second_peak, blocks = example
    assert planned(budget)[:3] == (first, peak, reserved)
    assert float(vram) == round(float(peak) - 0.01, 2)  # "just under that peak"
    plan, allocated, _, streamed = planned(vram)
    assert (plan, allocated, streamed) == (second, second_peak, blocks)


def _coming_from_rows() -> list[list[str]]:
    """The rows of docs/usage.md's "Coming from ComfyUI or stable-diffusion.cpp" table, as their 4 cells."""
    text = (Path(__file__).parents[1] / "docs/usage.md").read_text()
    section = text.split("## Coming from ComfyUI or stable-diffusion.cpp", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # the header row left out


def _spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_coming_from_comfyui_table_of_docs_usage_is_what_run_answers(capsys):
    # docs/usage.md, "Coming from ComfyUI or stable-diffusion.cpp": each flag in our column is one of run's, and each
    # of their names typed as a flag (a ComfyUI widget `cfg` as --cfg) is ours or refused with a hint that names one
    # of the flags our column gives (any hint where it gives none).
    from motif_lite.cli import build_parser
    from motif_lite.cli.command_hints import subcommands
    from motif_lite.flag_spelling import option_strings, spelled

    run = subcommands(build_parser())["run"]
    ours_all = set(option_strings(run))
    dest = {flag: action.dest for flag, action in run._option_string_actions.items()}
    rows = _coming_from_rows()
    assert len(rows) >= 20, rows
    for setting, comfyui, sd_cpp, ours in rows:
        flags = [span.split()[0] for span in _spans(ours) if span.startswith("-")]
        assert set(flags) <= ours_all, (setting, flags)
        widgets = ["--" + span for span in _spans(comfyui) if re.fullmatch(r"[a-z][a-z0-9_]*", span)]
        theirs = widgets + [span.split()[0] for span in _spans(comfyui) + _spans(sd_cpp) if span.startswith("-")]
        assert theirs, setting
        for flag in theirs:
            if spelled(flag) in ours_all:
                assert dest[spelled(flag)] in {dest[f] for f in flags}, (setting, flag)  # ours: the row gives it
                continue
            with pytest.raises(SystemExit):
                cli.main(["run", "-p", "x", flag, "2"])  # a value with no special case (a denoise of 1 has one)
            err = capsys.readouterr().err
            hint = err.split(f"({flag}: ", 1)[1] if f"({flag}: " in err else None
            assert hint is not None, (setting, flag, err)
            named = [f for f in flags if re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", hint)]
            assert named or not flags, (setting, flag, hint)


def test_the_official_numbers_and_crf_defaults_run_help_gives_are_their_sources():
    # `run --help` writes the official APG and shift values and the CRF defaults as literals (it may not import torch,
    # which sampling.guidance and io.video do): they must stay the values a run takes.
    from motif_lite.cli.command_hints import subcommands
    from motif_lite.io.video import default_crf
    from motif_lite.request import I2V_SHIFT, T2V_SHIFT
    from motif_lite.sampling.guidance import RECOMMENDED_APG as apg

    text = subcommands(cli.build_parser())["run"].format_help()
    shifts = [T2V_SHIFT, I2V_SHIFT]
    assert _numbers_in(text, rf"flow shift \(default: checkpoint's, else {NUMBER} T2V / {NUMBER} I2V\)") == shifts
    said = _numbers_in(text, rf"official APG \(scale {NUMBER}, norm threshold {NUMBER}, momentum {NUMBER}\)")
    assert said == [apg.scale, apg.norm_threshold, apg.momentum]
    said = _numbers_in(text, rf"else Euler, shift {NUMBER} T2V / {NUMBER} I2V, APG scale {NUMBER} with norm threshold "
                       rf"{NUMBER} and momentum {NUMBER}\)")  # fmt: skip
    assert said == [*shifts, apg.scale, apg.norm_threshold, apg.momentum]
    for flag, official in [("--cfg-scale", apg.scale), ("--apg-eta", apg.eta),
                           ("--apg-norm-threshold", apg.norm_threshold), ("--apg-momentum", apg.momentum)]:  # fmt: skip
        assert _numbers_in(text, rf"{flag} .*?default: the guider's, else {NUMBER}\b") == [official], flag
    said = _numbers_in(text, rf"\(H.264\) 0-51, default {NUMBER}; .webm \(VP9\) 0-63, default {NUMBER}\.")
    assert said == [default_crf("a.mp4"), default_crf("a.webm")]


def test_the_sampling_after_which_a_run_saves_before_its_decode_is_the_codes():
    # docs/usage.md gives pipe.save_final_state_after in seconds, and usage, memory and server say "a minute or
    # more" of sampling: both the constant that decides it (keeping.SAVE_FINAL_STATE_AFTER_SECONDS).
    from motif_lite.keeping import SAVE_FINAL_STATE_AFTER_SECONDS

    pattern = rf"`pipe.save_final_state_after` the {NUMBER} s of sampling after which"
    assert _numbers_in(USAGE.read_text(), pattern) == [SAVE_FINAL_STATE_AFTER_SECONDS]
    said = rf"(?:took|of|sampling of) (a minute|{NUMBER} minutes) or more"
    for page in (USAGE, MEMORY, SERVER):
        claims = re.findall(said, " ".join(page.read_text().split()))
        assert claims, page
        for minute, number in claims:
            assert (1.0 if minute else float(number)) * 60 == SAVE_FINAL_STATE_AFTER_SECONDS, (page, minute or number)


def test_the_6_8_gb_table_holds_on_a_small_loaded_machine(no_network, no_weights, capsys, monkeypatch):
    # The table is for a host with each row's host peak available (docs/memory.md says so): the tests' plans see
    # one (conftest's `roomy_host`), also in a container whose memory other processes take
    # (`host_memory.available_ram` reads it through `memory_limit`), where the 6 GB row's blocks were staged by the
    # machine's memory, not the code's.
    import itertools

    from motif_lite.runtime import host_memory
    from motif_lite.runtime.memory_limit import MemoryLimit

    taken = itertools.count(16)
    monkeypatch.setattr(host_memory, "memory_limit", lambda: MemoryLimit(24 * 2**30, next(taken) * 2**30, version=2))
    assert host_memory.available_ram() <= 8 * 2**30  # this machine, as the plans would read it unpatched
    assert_the_dry_run_prints_the_row(capsys, "6 GB", "5", "Q4_K_M")


def test_the_6_gb_row_with_less_than_its_host_peak_available_is_the_planners(no_network, no_weights, capsys,
                                                                             monkeypatch):  # fmt: skip
    # docs/memory.md, under "On a 6-8 GB GPU": with less than a row's host peak available, the streamed blocks get
    # staging buffers instead of page-locked homes, and the 6 GB row's host peak is the one the page names.
    from motif_lite.runtime import planner

    section = MEMORY.read_text().split("## On a 6-8 GB GPU", 1)[1].split("\n## ", 1)[0]
    claim = r"with the host peak's memory available; with less, the streamed blocks get staging buffers instead "
    said = re.search(claim + r"of page-locked homes: (\S+) GiB on the 6 GB row\)", " ".join(section.split()))
    assert said is not None, section
    row = next(line for line in section.splitlines() if line.startswith("| 6 GB | ") and "| Q4_K_M |" in line)
    roomy = float(row.split("|")[-2].removesuffix(" GiB "))  # the row's host peak, with page-locked homes
    monkeypatch.setattr(planner, "available_ram", lambda: int((roomy - 0.01) * 2**30))
    assert cli.main(["run", "--dry-run", "--device", "cuda", "--vram", "5", "--gguf", "Q4_K_M", "-p", "a fox"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"host peak (\S+) GiB RSS", out).group(1) == said.group(1), out
    assert "streamed blocks: staged" in out and said.group(1) != f"{roomy:.2f}", out
