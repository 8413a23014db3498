"""The checks a run makes just before a download (the settings' and the memory plan's refusals, the prompts the text
encoder cuts, the CPU time question) locate the files at hand once: each located them again, reading every config
file of the checkpoint two or three times before one download."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("diffusers")

from motif_lite import cli  # noqa: E402
from motif_lite.choices import MOTIF_REPO  # noqa: E402
from motif_lite.cli import before_download, run_request  # noqa: E402
from motif_lite.cli.prepare import sources_at_hand  # noqa: E402
from motif_lite.cli.run_time import CpuTimeQuestion  # noqa: E402
from motif_lite.io.hub import DownloadPlan  # noqa: E402
from motif_lite.runtime.parallel import ParallelLayout  # noqa: E402


@pytest.fixture
def configs_cached(shared_checkpoint, no_network) -> Path:
    """The official repo in the (offline) Hub cache with every file but the weights: a download stopped part way,
    which the next run's download completes."""
    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    shutil.copytree(shared_checkpoint[0], snapshot, ignore=lambda _, names: [n for n in names if "safetensors" in n])
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    return snapshot


@pytest.fixture(scope="module")
def text_encoder_gguf(shared_checkpoint, tmp_path_factory) -> Path:
    """A Q8_0 text encoder GGUF of the tiny checkpoint, made by our quantizer."""
    from motif_lite.quantize.cli import main as quantize

    out = tmp_path_factory.mktemp("text_gguf") / "te-Q8_0.gguf"
    root = str(shared_checkpoint[0])
    assert quantize([root, "--component", "text_encoder", "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    return out


@pytest.fixture
def json_reads(monkeypatch) -> Counter[str]:
    """How many times each .json file is opened (pathlib's reads and `open` both go through `io.open`)."""
    reads: Counter[str] = Counter()
    uncounted = io.open

    def counted(file, *args, **kwargs):
        if str(file).endswith(".json"):
            reads[str(file)] += 1
        return uncounted(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counted)
    monkeypatch.setattr("builtins.open", counted)
    return reads


def run_args(*flags: str):
    args = cli.build_parser().parse_args(["run", "-p", "a fox", "--device", "cpu", "--yes", "--steps", "2", *flags])
    args.weights = {}
    return args


def one_locate(args, json_reads: Counter[str]) -> Counter[str]:
    """The files one look at what is at hand reads, and how often."""
    sources_at_hand(args, quantized=False)
    once = Counter(json_reads)
    json_reads.clear()
    return once


@pytest.mark.parametrize("text_gguf", [False, True], ids=["checkpoint", "text-encoder-gguf"])
def test_locating_the_files_at_hand_reads_each_config_once(configs_cached, json_reads, text_gguf, request):
    """The checkpoint's configs are read once each (`CheckpointConfigs.read`): the scheduler's and the guider's were
    read again to check the class model_index.json lists, and with a --text-encoder-gguf the text encoder's config
    again after the GGUF's config was checked against it."""
    flags = ("--text-encoder-gguf", str(request.getfixturevalue("text_encoder_gguf"))) if text_gguf else ()
    once = one_locate(run_args(*flags), json_reads)
    configs = [str(path) for path in configs_cached.rglob("*.json") if path.name != "tokenizer.json"]
    assert {path: once[path] for path in configs} == dict.fromkeys(configs, 1)


def test_locating_a_local_folder_reads_each_config_once(shared_checkpoint, json_reads):
    """A -m folder's model_index.json was read to find the configs it lists, then again with the configs."""
    root = shared_checkpoint[0]
    once = one_locate(run_args("-m", str(root)), json_reads)
    configs = [str(path) for path in root.rglob("*.json") if path.name != "tokenizer.json"]
    assert {path: once[path] for path in configs} == dict.fromkeys(configs, 1)


@pytest.mark.parametrize("flags", [(), ("--vram", "8")], ids=["cpu", "cpu-with-budget"])
def test_a_run_reads_the_configs_at_hand_once_before_its_download(
    configs_cached, json_reads, flags, capsys, monkeypatch
):
    from motif_lite.runtime import cost

    # A slow CPU, whatever this one measures: the tiny checkpoint's run is then long, and the question is asked
    # (measured here, an idle machine found it short and asked nothing).
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype, *args, **kwargs: 1e6)
    args = run_args(*flags)
    once = one_locate(args, json_reads)
    assert str(configs_cached / "transformer/config.json") in once
    question = CpuTimeQuestion(yes=True)
    before = before_download.ask_before_download(args, [run_request.request_from_args(args)], "cpu", question, {})
    before(DownloadPlan(MOTIF_REPO, {}))
    assert question.said, capsys.readouterr().err  # every check ran: the last one asked
    assert json_reads == once  # the text encoder's config too: the planner and the time estimate read it again


def test_a_run_with_a_text_encoder_gguf_reads_the_configs_at_hand_once_before_its_download(
    configs_cached, json_reads, text_encoder_gguf, capsys, monkeypatch
):
    # The checks look at the files with the --text-encoder-gguf and, for the prompts and the time question, without
    # it: the second look read every config again.
    from motif_lite.runtime import cost

    monkeypatch.setattr(cost, "measure_matmul_flops", lambda dtype, *args, **kwargs: 1e6)  # as above: it asks
    args = run_args("--vram", "8", "--text-encoder-gguf", str(text_encoder_gguf))
    once = one_locate(args, json_reads)
    assert str(configs_cached / "scheduler/scheduler_config.json") in once
    question = CpuTimeQuestion(yes=True)
    before = before_download.ask_before_download(args, [run_request.request_from_args(args)], "cpu", question, {})
    before(DownloadPlan(MOTIF_REPO, {}))
    assert question.said, capsys.readouterr().err  # every check ran, with the GGUF and without it
    assert json_reads == once


@pytest.mark.parametrize("main", [True, False])
def test_a_rank_reads_the_configs_at_hand_once_before_its_download(configs_cached, json_reads, main):
    args = run_args("--vram", "8")  # with a budget: the settings' refusal and the plan's both look
    once = one_locate(args, json_reads)
    rank = SimpleNamespace(is_main=main, layout=ParallelLayout(2, 1))
    request = run_request.request_from_args(args)
    before_download.rank_refuses_before_download(args, request, "cpu", rank, {})(DownloadPlan(MOTIF_REPO, {}))
    assert json_reads == once  # the text encoder's config too: the planner and the time estimate read it again
