"""motif-lite's Python API inside a host application that lives for days (a ComfyUI node, a Gradio app, a Jupyter
kernel): one pipeline loaded once, `generate` called from the host's worker threads, requests built by its code."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from pathlib import Path

import pytest
import torch

from motif_lite import GenerationRequest, RequestError, cli, load_pipeline
from motif_lite.errors import ConfigError
from motif_lite.io.latents import latents_path, read_latents, save_latents

TINY = dict(width=48, height=32, frames=5, steps=3, seed=3)
WAIT_S = 3.0  # how long a run part way waits for a call from another thread to start (it must not)


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    return load_pipeline(shared_checkpoint[0], dtype="fp32", device="cpu", kernels="torch")


@pytest.mark.parametrize(
    "name, advice",
    [
        ("fox_{seed}.mp4", "output=f'{folder}/fox_{{seed}}.mp4' (give seed=seed too"),
        ("clip{n}.mp4", "output=f'{folder}/clip{{n}}.mp4'"),
        ("fox_{date}.webm", "output=f'{folder}/fox_{{date}}.webm'"),
        ("fox_{frame}.mp4", "for a PNG per frame give output='{folder}/fox_%03d.png'"),
        ("fox_{seed:04d}.mp4", "output=f'{folder}/fox_{{seed:04d}}.mp4' (give seed=seed too"),  # a format spec
        ("fox_{frame:04d}.mp4", "for a PNG per frame give output='{folder}/fox_%03d.png'"),
    ],
)
def test_an_output_with_a_placeholder_is_refused_with_pythons_way_to_fill_it(pipe, tmp_path, name, advice):
    # `output="fox_{seed}.mp4"` (an f-string's missing f, or another tool's placeholder) was written as named, braces
    # and all, where `motif-lite run -o` refuses it: each call of a node's loop replaced the last one's video.
    with pytest.raises(RequestError, match="which motif-lite does not fill in") as refused:
        pipe.generate(GenerationRequest("a fox", **TINY, output=str(tmp_path / name)))
    assert advice.format(folder=tmp_path) in str(refused.value)
    assert refused.value.fields == ("output",)
    assert list(tmp_path.iterdir()) == []  # refused before any work


@pytest.mark.parametrize(
    "name, written",
    [
        ("fox_{v2}_{seed}.mp4", "fox_{v2}_7.mp4"),
        ("fox {}_{seed}.mp4", "fox {}_7.mp4"),
        ("{v2}/fox_{seed}.mp4", "{v2}/fox_7.mp4"),
        ("{seed}/fox_{seed}.mp4", "{seed}/fox_7.mp4"),  # a folder's braces are its name, not the f-string's
        ("clip{n}_}.webm", "clip7_}.webm"),
        ("fox_{seed:04d}.mp4", "fox_0007.mp4"),  # a format spec: the f-string's own
        ("fox_{seed!s}.mp4", "fox_7.mp4"),
    ],
)
def test_the_f_string_advised_for_a_placeholder_is_valid_python_that_keeps_the_other_braces(tmp_path, name, written):
    # The advice printed the name in an f-string as it was: `{v2}` became a NameError, `{}` a SyntaxError.
    with pytest.raises(RequestError, match="which motif-lite does not fill in") as refused:
        GenerationRequest("a fox", **TINY, output=str(tmp_path / name)).resolve()
    advised = re.search(r"output=(f'[^']*')", str(refused.value))[1]
    assert eval(advised, {}, {"seed": 7, "n": 7}) == str(tmp_path / written)


def test_a_counter_in_a_png_name_is_also_told_the_frame_pattern(tmp_path):
    # `frame_{i}.png` most likely means the frame number: an f-string's name is one image, refused for 5 frames.
    with pytest.raises(RequestError) as refused:
        GenerationRequest("a fox", **TINY, output=str(tmp_path / "frame_{i}.png")).resolve()
    pattern = re.search(r"for a PNG per frame give output='([^']*)'", str(refused.value))[1]
    assert pattern == str(tmp_path / "frame_%03d.png")
    assert GenerationRequest("a fox", **TINY, output=pattern).resolve()[0].output == pattern  # and it is taken


@pytest.mark.parametrize(
    "name, ours",
    [("fox_{frame}.png", "fox_%03d.png"), ("fox_{frame:04d}.png", "fox_%04d.png"), ("fox_####.png", "fox_%04d.png")],
)
def test_another_tools_frame_number_in_a_png_name_is_told_ours_in_each_callers_words(
    shared_checkpoint, tmp_path, capsys, name, ours
):
    # A Python caller was told `-o ...`, run's flag, for output='fox_{frame}.png'; run's own message stays as it was.
    told = f"{name} writes its frame number as another tool does"
    with pytest.raises(RequestError, match=re.escape(told)) as refused:
        GenerationRequest("a fox", **TINY, output=str(tmp_path / name)).resolve()
    assert str(refused.value).endswith(f": output='{tmp_path / ours}'") and ": -o " not in str(refused.value)
    size = ["-W", "48", "-H", "32", "--video-frames", "5", "--steps", "2", "--device", "cpu", "--yes"]
    code = cli.main(["run", "-m", str(shared_checkpoint[0]), "-p", "a fox", *size, "-o", str(tmp_path / name)])
    assert code == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.strip().endswith(f"{told} ({name[4:-4]}); motif-lite's PNG sequences write it "
                                                    f"as printf's {ours[4:-4]}: -o {tmp_path / ours}")  # fmt: skip


def test_braces_that_are_no_placeholder_stay_part_of_the_name(tmp_path):
    # str.format's positional fields too: no f-string leaves one, and nothing says what value was meant.
    for plain in ("fox_{v2}.mp4", "fox {}.mp4", "fox_{0}.mp4", "fox_{0:04d}.mp4", "{seed}/fox.mp4"):
        output = tmp_path / plain
        output.parent.mkdir(exist_ok=True)
        assert GenerationRequest("a fox", **TINY, output=output).resolve()[0].output == output


def test_calls_from_two_threads_at_once_run_one_after_the_other(pipe, tmp_path):
    # Two threads of a host (a Gradio app's requests) ran two videos at once on one pipeline: twice the memory it
    # was planned for on a GPU, and `set_loras` could take the transformer from a run part way.
    events: list[tuple[str, str, int]] = []
    first_inside, second_started = threading.Event(), threading.Event()

    def first_progress(stage: str, done: int, total: int) -> None:
        events.append(("first", stage, done))
        if stage == "denoise" and done == 1:
            first_inside.set()
            second_started.wait(WAIT_S)  # the second call, were it let in, starts now

    def second_progress(stage: str, done: int, total: int) -> None:
        second_started.set()
        events.append(("second", stage, done))

    results = {}

    def call(name: str, on_progress) -> None:
        request = GenerationRequest("a fox", **TINY, output=tmp_path / f"{name}.mp4")
        results[name] = pipe.generate(request, on_progress=on_progress)

    first = threading.Thread(target=call, args=("first", first_progress))
    first.start()
    assert first_inside.wait(60)
    second = threading.Thread(target=call, args=("second", second_progress))
    second.start()
    first.join(120)
    second.join(120)
    assert sorted(results) == ["first", "second"]
    callers = [caller for caller, _, _ in events]
    assert callers == sorted(callers), events  # every report of the first run before the second's first one


def test_set_loras_from_another_thread_waits_for_the_run(pipe, tmp_path):
    run_inside, loras_set = threading.Event(), threading.Event()
    order: list[str] = []

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            run_inside.set()
            loras_set.wait(WAIT_S)  # set_loras, were it let in, replaces the transformer now

    def set_loras() -> None:
        pipe.set_loras([])
        order.append("set_loras")
        loras_set.set()

    switch = threading.Thread(target=set_loras)
    run = threading.Thread(target=lambda: (pipe.generate(request, on_progress=on_progress), order.append("run")))
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    run.start()
    assert run_inside.wait(60)
    switch.start()
    run.join(120)
    switch.join(120)
    assert order == ["run", "set_loras"]
    assert pipe.transformer is not None


def _host_state() -> dict:
    """What a host application owns and a library must leave as it found it."""
    root = logging.getLogger()
    return {
        "root logger": (root.level, list(root.handlers), logging.root.manager.disable),
        "torch threads": (torch.get_num_threads(), torch.get_num_interop_threads()),
        "torch defaults": (torch.get_default_dtype(), torch.get_float32_matmul_precision(), torch.is_grad_enabled()),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "signal handlers": {signum: signal.getsignal(signum) for signum in signal.valid_signals() if signum < 32},
        "exception hooks": (sys.excepthook, threading.excepthook),
        "folder": os.getcwd(),
        "streams": (sys.stdout, sys.stderr),
        "environment": dict(os.environ),
        "warnings filters": list(warnings.filters),
    }


def test_generate_from_a_worker_thread_leaves_the_hosts_state_as_it_was(pipe, tmp_path):
    before = _host_state()
    worker = threading.Thread(
        target=lambda: pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"))
    )
    worker.start()
    worker.join(120)
    assert (tmp_path / "fox.mp4").is_file()  # it ran: no signal handler to install outside the main thread
    after = _host_state()
    assert {key: value for key, value in after.items() if value != before[key]} == {}


# A host's process: the libraries motif-lite uses are imported first (their own loggers, warnings filters and
# environment are theirs), then motif_lite is, and a pipeline loaded. Warnings filters are left out: transformers
# adds its own as it imports its parts on first use.
HOST = """
import json, logging, os, signal, sys, threading
import huggingface_hub, numpy, PIL.Image, safetensors, torch, tqdm, transformers

def state():
    root = logging.getLogger()
    return repr({
        "root logger": (root.level, root.handlers, logging.root.manager.disable),
        "torch": (torch.get_num_threads(), torch.get_default_dtype(), torch.get_float32_matmul_precision(),
                  torch.is_grad_enabled(), torch.are_deterministic_algorithms_enabled()),
        "signal handlers": {s: signal.getsignal(s) for s in signal.valid_signals() if s < 32},
        "exception hooks": (sys.excepthook, threading.excepthook),
        "folder": os.getcwd(),
        "environment": sorted(os.environ.items()),
    })

before = state()
from motif_lite import load_pipeline
load_pipeline(sys.argv[1], dtype="fp32", device="cpu", kernels="torch")
print(json.dumps([before, state()]))
"""


def test_importing_motif_lite_and_loading_leave_the_hosts_state_as_it_was(shared_checkpoint):
    done = subprocess.run(
        [sys.executable, "-c", HOST, str(shared_checkpoint[0])], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.splitlines()[-1])
    assert after == before


class Cancelled(Exception):
    """A host's own cancel, raised from `on_progress`."""


def test_a_pipeline_let_go_of_is_freed_without_a_collection_after_a_run_and_a_cancel(shared_checkpoint, tmp_path):
    # A host that drops its pipeline (another checkpoint picked in its UI) gets its memory back at once: nothing of
    # the pipeline waits in a reference cycle for the garbage collector, which may not run for a long time.
    def cancel(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise Cancelled

    pipe = load_pipeline(shared_checkpoint[0], dtype="fp32", device="cpu", kernels="torch")
    parts = [weakref.ref(part) for part in (pipe, pipe.transformer, pipe.vae, pipe.text_encoder)]
    pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"))
    with pytest.raises(Cancelled):
        pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "cat.mp4"), on_progress=cancel)
    gc.disable()
    try:
        del pipe
        assert [part() is None for part in parts] == [True] * 4
    finally:
        gc.enable()
    again = load_pipeline(shared_checkpoint[0], dtype="fp32", device="cpu", kernels="torch")
    assert again.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")).output.is_file()


def test_a_callback_that_calls_its_own_pipeline_is_refused_rather_than_hanging(pipe, tmp_path):
    # The second call would wait for the first, which waits for its callback: the host's thread would hang for good.
    def generate_again(stage: str, done: int, total: int) -> None:
        pipe.generate(GenerationRequest("a cat", **TINY, output=tmp_path / "cat.mp4"))

    raised = []

    def call() -> None:
        try:
            pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"), on_progress=generate_again)
        except ConfigError as exc:
            raised.append(str(exc))

    worker = threading.Thread(target=call, daemon=True)  # a daemon: a hung one does not keep pytest from ending
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the callback's call hung"
    assert len(raised) == 1 and "while this pipeline's generate runs, from its own thread" in raised[0], raised
    assert pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")).output.is_file()


def test_a_placeholder_in_a_path_or_in_capitals_is_refused_as_in_a_string(tmp_path):
    # output= takes a Path as a str, and {Seed} is the seed's placeholder as {seed} is (run -o refuses both).
    for output in (tmp_path / "fox_{seed}.mp4", str(tmp_path / "fox_{Seed}.mp4")):
        with pytest.raises(RequestError, match="give seed=seed too"):
            GenerationRequest("a fox", **TINY, output=output).resolve()


def _refused_from_its_own_callback(pipe, caller, tmp_path) -> list[str]:
    """The ConfigErrors of a run of `pipe` whose on_progress calls `caller.generate`, on a thread of its own that
    must end (a daemon: a hung one does not keep pytest from ending)."""

    def generate_again(stage: str, done: int, total: int) -> None:
        caller.generate(GenerationRequest("a cat", **TINY, output=tmp_path / "cat.mp4"))

    raised = []

    def call() -> None:
        try:
            pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"), on_progress=generate_again)
        except ConfigError as exc:
            raised.append(str(exc))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the callback's call hung"
    return raised


def test_a_deep_copy_and_a_pickled_pipeline_run_with_a_lock_of_their_own(pipe, tmp_path):
    # Gradio's gr.State deep-copies the value it holds: the pipeline's lock made deepcopy and pickle a TypeError.
    # (A copy after a run, and the caches it drops: tests/test_pipeline_pickle.py.)
    for name, twin in (("deep", copy.deepcopy(pipe)), ("pickled", pickle.loads(pickle.dumps(pipe)))):
        assert twin.generate(GenerationRequest("a fox", **TINY, output=tmp_path / f"{name}.mp4")).output.is_file()
        # A copy is a pipeline of its own: called from the original's callback, it runs.
        assert _refused_from_its_own_callback(pipe, twin, tmp_path) == []


def test_a_shallow_copy_called_from_its_originals_callback_is_refused_rather_than_hanging(pipe, tmp_path):
    # copy.copy shares the weights and the lock: its call from the original's run would wait for that run for good.
    raised = _refused_from_its_own_callback(pipe, copy.copy(pipe), tmp_path)
    assert len(raised) == 1 and "while this pipeline's generate runs, from its own thread" in raised[0], raised


def _state_an_older_version_wrote(pipe, folder) -> tuple[Path, Path]:
    """(the state file of a run stopped part way, as a version whose Python API took output="fox_{seed}.mp4" as
    named wrote it; that output): a run stopped under a plain name, its file's output renamed so."""

    def cancel(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        pipe.generate(GenerationRequest("a fox", **TINY, output=folder / "fox_seed.mp4"), on_progress=cancel)
    plain = folder / "fox_seed.latents.safetensors"
    saved, output = read_latents(plain), folder / "fox_{seed}.mp4"
    plain.unlink()
    older = dataclasses.replace(saved, output=output, request={**saved.request, "output": str(output)})
    return save_latents(older, latents_path(output)), output


def test_a_run_an_older_version_stopped_with_braces_in_its_output_goes_on_in_python(pipe, tmp_path):
    # The resume line the library prints (`generate(GenerationRequest(**saved.request), resume=saved)`) was refused
    # for the braces of the stopped run's own name; a new output with braces still is.
    state, output = _state_an_older_version_wrote(pipe, tmp_path)
    saved = read_latents(state)
    renamed = GenerationRequest(**{**saved.request, "output": str(tmp_path / "new_{seed}.mp4")})
    with pytest.raises(RequestError, match="which motif-lite does not fill in"):
        pipe.generate(renamed, resume=saved)
    result = pipe.generate(GenerationRequest(**saved.request), resume=saved)
    assert result.output == output and output.is_file() and not state.exists()


def test_a_run_an_older_version_stopped_with_braces_in_its_output_goes_on_with_run_resume(pipe, tmp_path, capsys):
    # `run --resume` called the file "edited or damaged", with Python's advice; `decode` took the same file.
    state, output = _state_an_older_version_wrote(pipe, tmp_path)
    code = cli.main(["run", "--resume", str(state), "--device", "cpu", "--kernels", "torch", "--yes"])
    assert code == 0, capsys.readouterr().err
    assert output.is_file() and not state.exists()


def test_run_resume_given_the_stopped_runs_own_braced_name_as_o_goes_on(pipe, tmp_path, capsys, monkeypatch):
    # The same resume without -o went on, and so did Python's; with -o naming that run's own output (as the resume
    # line a script kept says it), the braces were refused.
    state, output = _state_an_older_version_wrote(pipe, tmp_path)
    monkeypatch.chdir(tmp_path)
    resume = ["run", "--resume", str(state), "--device", "cpu", "--kernels", "torch", "--yes", "-o", output.name]
    assert cli.main(resume) == 0, capsys.readouterr().err
    assert output.is_file() and not state.exists()


def test_run_resume_with_a_new_braced_name_as_o_is_still_refused(pipe, tmp_path, capsys):
    state, _ = _state_an_older_version_wrote(pipe, tmp_path)
    new = tmp_path / "new_{seed}.mp4"
    assert cli.main(["run", "--resume", str(state), "--device", "cpu", "-o", str(new)]) == cli.EXIT_USER_ERROR
    assert f"-o {new} has {{seed}}, which motif-lite does not fill in" in capsys.readouterr().err


def test_a_counter_in_a_png_name_that_has_the_frame_pattern_already_is_not_told_a_second_one(tmp_path):
    # `fox_%03d_{i}.png` numbers its frames already: a second %03d in place of {i} would make a name ffmpeg's image
    # writer cannot fill in; only the f-string is advised.
    with pytest.raises(RequestError, match="which motif-lite does not fill in") as refused:
        GenerationRequest("a fox", **TINY, output=str(tmp_path / "fox_%03d_{i}.png")).resolve()
    assert "for a PNG per frame" not in str(refused.value) and "%03d_%03d" not in str(refused.value), refused.value


def test_a_call_waiting_on_another_thread_leaves_the_runs_own_callback_refused(pipe, tmp_path):
    # A call that waits for the running one must not take its place as the holder before it has the lock: the
    # run's callback calling its own pipeline then waited for the lock its own thread holds, for good.
    inside, second_started = threading.Event(), threading.Event()
    raised = []

    def generate_again(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            inside.set()
            second_started.wait(60)
            time.sleep(0.5)  # the second call is at the lock by now
            pipe.generate(GenerationRequest("a cat", **TINY, output=tmp_path / "cat.mp4"))

    def first() -> None:
        try:
            pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"), on_progress=generate_again)
        except ConfigError as exc:
            raised.append(str(exc))

    def second() -> None:
        second_started.set()
        pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "second.mp4"))

    running = threading.Thread(target=first, daemon=True)  # daemons: hung ones do not keep pytest from ending
    running.start()
    assert inside.wait(60)
    waiting = threading.Thread(target=second, daemon=True)
    waiting.start()
    running.join(60)
    waiting.join(120)
    assert not running.is_alive() and not waiting.is_alive(), "a call hung"
    assert len(raised) == 1 and "while this pipeline's generate runs, from its own thread" in raised[0], raised
    assert (tmp_path / "second.mp4").is_file()


def test_set_loras_from_a_runs_callback_is_refused_naming_both_calls(pipe, tmp_path):
    raised = []

    def set_loras(stage: str, done: int, total: int) -> None:
        pipe.set_loras([])

    def call() -> None:
        try:
            pipe.generate(GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4"), on_progress=set_loras)
        except ConfigError as exc:
            raised.append(str(exc))

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the callback's call hung"
    assert len(raised) == 1 and "pipe.set_loras was called while this pipeline's generate runs" in raised[0], raised


@pytest.mark.parametrize("name", ["fox_{seed!a}.mp4", "fox_{seed!r}.mp4", "fox_{n!a:>8}.mp4"])
def test_a_placeholder_with_any_of_pythons_conversions_is_refused(tmp_path, name):
    # An f-string's field converts with !s, !r or !a: each is the placeholder as written without it.
    with pytest.raises(RequestError, match="which motif-lite does not fill in"):
        GenerationRequest("a fox", **TINY, output=str(tmp_path / name)).resolve()
