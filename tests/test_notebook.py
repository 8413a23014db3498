"""The Python API as a notebook user meets it (Colab, Kaggle): the stop button in the middle of a step, then the
same pipeline again; progress bars in a cell; a GPU before Ampere told about bf16 where the command line tells it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("diffusers")

from motif_lite import load_pipeline  # noqa: E402
from motif_lite.checkpoint import locate_sources  # noqa: E402
from motif_lite.io.latents import read_latents  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402
from motif_lite.units import memory_size  # noqa: E402

TINY = dict(width=48, height=32, frames=5, steps=3, seed=3)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")


def tensors_held(tb) -> int:
    """Tensors in the locals of the frames a traceback keeps alive (as a notebook keeps its last one)."""
    held = 0
    while tb is not None:
        held += sum(isinstance(value, torch.Tensor) for value in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    return held


def test_the_stop_button_mid_step_frees_the_steps_tensors_and_the_pipeline_goes_on(pipe, tmp_path):
    forwards = []

    def stop_in_the_second_step(module, args, output):
        forwards.append(1)
        if len(forwards) == 3:  # two forwards per guided step: this is step 2's first block
            raise KeyboardInterrupt

    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    hook = pipe.transformer.transformer_blocks[0].register_forward_hook(stop_in_the_second_step)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            pipe.generate(request)
    finally:
        hook.remove()
    assert tensors_held(stopped.value.__traceback__.tb_next) == 0  # the test's own frame is still running

    saved = read_latents(tmp_path / "fox.latents.safetensors")  # the state after step 1, as the docs say
    assert saved.progress == (1, TINY["steps"])
    resumed = pipe.generate(GenerationRequest(**saved.request), resume=saved)
    assert resumed.resumed_at == 1 and resumed.output.stat().st_size > 0


class Loading(Exception):
    """Raised by the stand-in for the VAE loader: load_pipeline got past every check, to the weights."""


@pytest.fixture
def tesla_t4(checkpoint, monkeypatch):
    """A CUDA device here that is a 15 GiB Tesla T4 (compute capability 7.5: no bf16 tensor cores); the text encoder
    loads as nothing, and loading the VAE ends load_pipeline with `Loading(dtype)`."""
    from motif_lite.encoders import text
    from motif_lite.pipeline import loading

    monkeypatch.setattr(loading, "preflight", lambda *a, **kw: (locate_sources(checkpoint), torch.device("cuda")))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (14 * 2**30, 15 * 2**30))
    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **kw: SimpleNamespace(model=None))
    monkeypatch.setattr(loading, "apply_dequant_kernels", lambda *a, **kw: None)

    def load_vae(root, dtype, device, config=None):
        raise Loading(dtype)

    monkeypatch.setattr(loading, "load_vae", load_vae)
    return checkpoint


def test_load_pipeline_says_bf16_is_a_poor_fit_for_a_t4_before_loading(tesla_t4):
    # A notebook never sees the command line's note: the Python API warns, before any weight is read.
    bf16_advice = r"Tesla T4 \(compute capability 7.5\) has no bfloat16 tensor cores.*fp16"
    with pytest.warns(UserWarning, match=bf16_advice), pytest.raises(Loading):
        load_pipeline(tesla_t4, dtype="bf16", device="cuda")


@pytest.mark.parametrize(
    ("dtype", "loads_in"), [(None, torch.float16), ("fp16", torch.float16), ("fp32", torch.float32)]
)
def test_load_pipeline_on_a_t4_takes_fp16_unless_told_and_says_nothing_about_it(tesla_t4, dtype, loads_in):
    # docs/usage.md, "GPUs before Ampere": without a dtype such a GPU gets fp16, as ComfyUI picks it; no warning.
    with pytest.raises(Loading) as loading, warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pipeline(tesla_t4, dtype=dtype, device="cuda")
    assert loading.value.args == (loads_in,)


def test_load_pipeline_without_a_plan_warns_when_the_official_video_would_not_fit_the_gpu(tesla_t4, monkeypatch):
    # docs/usage.md, "In a notebook": everything on the GPU is an out-of-memory at the first 720p step of a 15 GB
    # T4; the planner's estimate says so before loading, with the fix. (The tiny checkpoint's official video needs
    # far less than a T4's 15 GiB, ~0.9 GiB: 0.5 GiB stands in for a small GPU here.)
    from motif_lite.memory_plan import plan_generation

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**29, 2**29))
    fix = rf"everything goes on Tesla T4, whose {memory_size(2**29)} are less than the \d+\.\d\d GiB .* 1280x736x121"
    with pytest.warns(UserWarning, match=fix) as said, pytest.raises(Loading):
        load_pipeline(tesla_t4, device="cuda")
    assert "plan = plan_generation(request, model" in str(said[0].message) and said[0].filename == __file__
    request = GenerationRequest("-", **TINY)  # planned: nothing to say
    with pytest.raises(Loading), warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pipeline(tesla_t4, device="cuda", plan=plan_generation(request, tesla_t4, device="cpu"))
    # The GPU's whole memory counts, not what other programs leave free of it now (a plan counts that): unsaid.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**29, 15 * 2**30))
    with pytest.raises(Loading), warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pipeline(tesla_t4, device="cuda")


def test_progress_bars_show_each_stage_and_serve_the_next_call_after_a_stop(pipe, tmp_path):
    from motif_lite.progress import ProgressBars

    shown = io.StringIO()
    bars = ProgressBars(file=shown)
    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    bars("denoise", 0, 3)
    bars("denoise", 2, 3)  # a stop part way (the stop button), then the same bars for the next call
    pipe.generate(request, on_progress=bars, keep_latents=False)
    text = shown.getvalue()
    assert "encode: 100%" in text and "decode: 100%" in text, text
    assert "denoise: 100%|" in text and f"{TINY['steps']}/{TINY['steps']}" in text, text
    assert bars.bar is None  # closed once the decode is done


def test_after_the_stop_button_del_pipe_frees_the_pipeline_the_notebooks_traceback_held(checkpoint, tmp_path):
    import gc
    import weakref

    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    loaded = weakref.ref(pipe)

    def stop(module, args, output):
        raise KeyboardInterrupt

    pipe.transformer.transformer_blocks[0].register_forward_hook(stop)
    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    with pytest.raises(KeyboardInterrupt) as stopped:
        pipe.generate(request)
    kept = stopped.value.__traceback__  # what a notebook keeps as sys.last_traceback
    del pipe
    gc.collect()
    # Held by the traceback, the pipeline's weights stayed in memory beside the next cell's load_pipeline.
    assert loaded() is None
    assert kept is not None


class Cell(io.StringIO):
    """Where tqdm's bars are drawn, as in a notebook's cell (`ProgressBars` draws tqdm's bars there too)."""

    def isatty(self) -> bool:
        return True


def _stop_with_bars(pipe, tmp_path, module, stops_at: int = 1) -> tuple[list, list, Cell]:
    """The stop button in `module`'s `stops_at`-th forward of a run drawing `ProgressBars` in a cell: whether the bar
    was still open at each note on what the run kept, the bar it stopped in, and the cell."""
    import logging

    from motif_lite.progress import ProgressBars

    shown = Cell()
    bars = ProgressBars(file=shown)
    open_at_the_note, stopped_bar, forwards = [], [], []

    def stop(module, args, output):
        forwards.append(1)
        if len(forwards) == stops_at:
            stopped_bar.append(bars.bar)
            raise KeyboardInterrupt

    class Watch(logging.Handler):
        def emit(self, record):
            if "saved" in record.getMessage():
                open_at_the_note.append(bars.bar is not None)

    watch = Watch()
    logging.getLogger("motif_lite").addHandler(watch)
    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    hook = module.register_forward_hook(stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(request, on_progress=bars)
    finally:
        hook.remove()
        logging.getLogger("motif_lite").removeHandler(watch)
    return open_at_the_note, stopped_bar, shown


def test_a_stopped_run_closes_its_bars_before_the_note_on_what_it_kept(pipe, tmp_path, caplog):
    from tqdm.auto import tqdm

    # two forwards per guided step: the stop button in step 2
    open_at_the_note, stopped_bar, shown = _stop_with_bars(pipe, tmp_path, pipe.transformer.transformer_blocks[0], 3)
    assert open_at_the_note == [False]  # the note on the saved state starts a line of its own
    # An open bar stays among tqdm's: the next one (the next cell's) is drawn under it with cursor-up escapes, which
    # a notebook shows as one new line per update.
    assert isinstance(stopped_bar[0], tqdm) and stopped_bar[0] not in tqdm._instances
    last_drawn = shown.getvalue().split("\r")[-1]
    assert last_drawn.startswith("denoise:") and last_drawn.endswith("]\n"), last_drawn  # its line ended


def test_a_run_stopped_while_encoding_closes_its_bar(pipe, tmp_path):
    from tqdm.auto import tqdm

    from motif_lite.progress import ProgressBars

    shown = Cell()
    bars = ProgressBars(file=shown)
    stopped_bar = []

    def stop(module, args, output):
        stopped_bar.append(bars.bar)
        raise KeyboardInterrupt

    request = GenerationRequest("a prompt no other test encodes", output=str(tmp_path / "fox.mp4"), **TINY)
    hook = pipe.text_encoder.model.register_forward_hook(stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(request, on_progress=bars)
    finally:
        hook.remove()
    assert isinstance(stopped_bar[0], tqdm) and stopped_bar[0] not in tqdm._instances
    assert shown.getvalue().split("\r")[-1].startswith(" encode:") and shown.getvalue().endswith("]\n")


def test_load_pipeline_stopped_part_way_lets_go_of_what_it_had_loaded(checkpoint, monkeypatch):
    import gc
    import weakref

    from motif_lite.pipeline import loading

    loaded = []
    load_vae = loading.load_vae

    def vae_watched(*args, **kwargs):
        vae = load_vae(*args, **kwargs)
        loaded.append(weakref.ref(vae))
        return vae

    def stop(*args, **kwargs):  # the stop button while the transformer loads, the longest part
        raise KeyboardInterrupt

    monkeypatch.setattr(loading, "load_vae", vae_watched)
    monkeypatch.setattr(loading, "load_transformer_stage", stop)
    with pytest.raises(KeyboardInterrupt) as stopped:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    kept = stopped.value.__traceback__  # what a notebook keeps: it held the text encoder and the VAE, loaded again
    gc.collect()  # beside them when the cell ran again
    assert loaded and loaded[0]() is None
    assert kept is not None


def test_set_loras_stopped_part_way_lets_go_of_the_transformer_it_was_loading(checkpoint, monkeypatch):
    import gc
    import weakref

    from motif_lite.pipeline import generation

    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    loaded = []
    load_transformer_stage = generation.load_transformer_stage

    def stopped_at_the_end(*args, **kwargs):  # the stop button as the new transformer finished loading
        transformer = load_transformer_stage(*args, **kwargs)
        loaded.append(weakref.ref(transformer))
        raise KeyboardInterrupt

    monkeypatch.setattr(generation, "load_transformer_stage", stopped_at_the_end)
    with pytest.raises(KeyboardInterrupt) as stopped:
        pipe.set_loras({})
    kept = stopped.value.__traceback__  # what a notebook keeps: the next set_loras loaded beside what it held
    gc.collect()
    assert loaded and loaded[0]() is None
    assert kept is not None


def test_a_run_stopped_while_decoding_closes_its_bar_before_the_note_on_what_it_kept(pipe, tmp_path):
    from tqdm.auto import tqdm

    open_at_the_note, stopped_bar, shown = _stop_with_bars(pipe, tmp_path, pipe.vae.decoder)  # while the VAE decodes
    assert open_at_the_note == [False]  # the note on the saved latents starts a line of its own
    assert isinstance(stopped_bar[0], tqdm) and stopped_bar[0] not in tqdm._instances
    assert shown.getvalue().split("\r")[-1].startswith(" decode:") and shown.getvalue().endswith("]\n")


def test_load_pipeline_stopped_inside_a_loader_lets_go_of_what_that_loader_held(checkpoint, monkeypatch):
    import gc
    import weakref

    from motif_lite.pipeline import loading

    held = []

    def stop_inside(*args, **kwargs):  # the stop button with the transformer half loaded in this frame's locals
        half_loaded = torch.nn.Linear(256, 256)
        held.append(weakref.ref(half_loaded))
        raise KeyboardInterrupt

    monkeypatch.setattr(loading, "load_transformer_stage", stop_inside)
    with pytest.raises(KeyboardInterrupt) as stopped:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    kept = stopped.value.__traceback__  # what a notebook keeps, with the loader's frame in it
    gc.collect()
    assert held and held[0]() is None
    assert kept is not None


def test_a_gpu_whose_whole_memory_is_the_estimate_itself_is_not_warned_of(tesla_t4, monkeypatch):
    # The estimate fits a GPU of exactly that memory: the warning starts one byte below it.
    from motif_lite.memory_plan import _planner_inputs, unplanned_memory_warning
    from motif_lite.runtime.planner import unplanned_peak_bytes

    sources, cuda = locate_sources(tesla_t4), torch.device("cuda")
    official = _planner_inputs(GenerationRequest("-"), sources, torch.float16, cuda, "auto", "exact", None)
    need = unplanned_peak_bytes(official)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (need, need))
    assert unplanned_memory_warning(sources, torch.float16, cuda) is None
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (need - 1, need - 1))
    assert "are less than the" in unplanned_memory_warning(sources, torch.float16, cuda)
