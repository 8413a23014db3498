"""The `cuda` mark: the GPU suite (`pytest -m cuda`, or `bash bench/gpu_check.sh` with the GPU benchmarks).

Tests marked `cuda` are skipped without a CUDA device. On a CUDA machine the kernel tests (every test that takes the
`kernel` fixture of tests/kernels_interp.py), which run compiled there instead of in Triton's CPU interpreter,
join the suite too. On a CUDA machine each failure is printed as it happens (`EchoFailures`).

No test reads or writes the contributor's own caches or sees their settings (`private_caches`, `own_user_cache`,
and tqdm's `TQDM_*` variables, dropped as this file is imported).
Torch runs on one thread, in the test process and the processes it starts (`one_torch_thread`).
"""

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# tqdm's settings (TQDM_DISABLE, TQDM_MININTERVAL, TQDM_NCOLS, ...), which a contributor may export for every bar:
# with TQDM_DISABLE=1 the progress tests saw no bars. tqdm reads them as it is imported, which torch does next, and
# motif-lite's own progress lines read them too, so they go before that, for the whole test process and the
# processes it starts. A test of one sets it itself (`monkeypatch.setenv`).
for _name in [name for name in os.environ if name.startswith("TQDM_")]:
    del os.environ[_name]

import torch  # noqa: E402


class EchoFailures:
    """Prints each failure's traceback as it happens. GPU time comes in short, time-limited slots: a run cut at its
    limit never reaches pytest's summary, and the reasons for its failures would be lost."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if report.failed and reporter is not None:
            reporter.write_line(f"\nFAILED {report.nodeid} ({report.when}):\n{report.longreprtext}\n")


def pytest_configure(config: pytest.Config) -> None:
    if torch.cuda.is_available():
        config.pluginmanager.register(EchoFailures(config), "echo-failures")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        for item in items:
            if "kernel" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.cuda)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs CUDA")


# Variables of the contributor's shell that would change what a test sees: a token sent to the Hub, offline mode or a
# mirror changing the Hub's messages, the key `motif-lite serve` takes from the environment (with it set, every
# request of the server tests without that key is refused), and Python's warning filters for the commands the tests
# start (with PYTHONWARNINGS=ignore the ranks of test_parallel_output.py printed no warning of the checkpoint).
USER_SETTINGS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_ENDPOINT",
    "MOTIF_LITE_API_KEY",
    "PYTHONWARNINGS",
)


@pytest.fixture(scope="session", autouse=True)
def private_caches(tmp_path_factory) -> Iterator[Path]:
    """Temporary folders, for the whole session, in place of the caches in the contributor's home: motif-lite's
    (`XDG_CACHE_HOME`), Hugging Face's (`HF_HOME`) and Triton's kernels (`TRITON_CACHE_DIR`), and none of
    `USER_SETTINGS`. Session-wide so that module fixtures, Triton's interpreter worker and subprocesses get them too.
    Hugging Face reads its variables when imported (at collection), so its constants are replaced as well. HOME
    itself is kept: tests compare `~` with `~user`, which Python expands from the password database."""
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        patch.setenv("TRITON_CACHE_DIR", str(root / "triton"))
        patch.setenv("HF_HOME", str(root / "huggingface"))
        patch.setenv("OMP_NUM_THREADS", "1")  # the subprocesses' torch: see `one_torch_thread`
        patch.delenv("HF_HUB_CACHE", raising=False)
        for name in USER_SETTINGS:
            patch.delenv(name, raising=False)
        patch.setattr(constants, "HF_HOME", str(root / "huggingface"))
        patch.setattr(constants, "HF_HUB_CACHE", str(root / "huggingface" / "hub"))
        patch.setattr(constants, "HF_TOKEN_PATH", str(root / "huggingface" / "token"))
        patch.setattr(constants, "HF_STORED_TOKENS_PATH", str(root / "huggingface" / "stored_tokens"))
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield root


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the whole session, and (`private_caches`' OMP_NUM_THREADS) for the servers, `python -m
    motif_lite` runs and ranks the tests start. The test models are tiny: a second thread's start-up and hand-offs
    cost more than it gains, and on a 2-core runner the subprocess tests run beside this process, so torch's
    default of one thread per core made the torch-heavy files 2-7x slower. Tests of thread settings set their
    own (test_parallel_cli)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def own_user_cache(private_caches: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A motif-lite cache folder of the test's own (`$XDG_CACHE_HOME/motif-lite`: linked checkpoints, kept latents,
    remembered attention choices), so that no test sees what another left there. Named after the test's id and made
    only when something is written there: `mktemp` would list the whole temporary folder for each test."""
    cache = private_caches / "per-test" / hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "motif-lite"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random-weight checkpoint in the official layout (tests/tiny_pipeline.py), one per test module, for
    modules that may change it. Modules that only read it take `shared_checkpoint` (one for the whole run) instead."""
    from tiny_pipeline import make_tiny_checkpoint  # diffusers: imported only where a module asks for it

    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoint(root)
    return root


@pytest.fixture(scope="session")
def shared_checkpoint(tmp_path_factory) -> Iterator[tuple[Path, object]]:
    """`checkpoint`'s tiny checkpoint (make_tiny_checkpoint's defaults) and the diffusers pipeline it was saved from
    (the reference), built once for every module that only reads them: a test that changes a file works on a copy
    (`shutil.copytree`). Its files are compared as the run ends, so a test that wrote into it fails instead of
    silently changing what the modules after it read."""
    from tiny_pipeline import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("shared_ckpt")
    reference = make_tiny_checkpoint(root)
    before = _folder_digest(root)
    yield root, reference
    assert _folder_digest(root) == before, f"a test changed the shared checkpoint {root}: change a copy of it instead"


@pytest.fixture(scope="session")
def shared_checkpoint_and_gguf(shared_checkpoint, tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """(`shared_checkpoint`'s folder, a Q8_0 GGUF of its transformer made by our quantizer in a folder of its own),
    made once for every module that only reads them. The GGUF's folder is compared as the run ends, as the
    checkpoint's is."""
    from motif_lite.quantize.cli import main as quantize

    folder = tmp_path_factory.mktemp("shared_gguf")
    gguf = folder / "tiny-Q8_0.gguf"
    assert quantize([str(shared_checkpoint[0]), "-o", str(gguf), "--type", "Q8_0", "--quiet"]) == 0
    before = _folder_digest(folder)
    yield shared_checkpoint[0], gguf
    assert _folder_digest(folder) == before, f"a test changed the shared GGUF's folder {folder}: change a copy instead"


def _folder_digest(root: Path) -> str:
    """The names and contents of everything under `root`."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """HF offline mode, an empty private cache, and every Hub call a test failure: nothing may be fetched."""
    from huggingface_hub import constants

    from motif_lite.io import checkpoint_source, gguf_source, hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for module, name in ((checkpoint_source, "snapshot_download"), (gguf_source, "hf_hub_download"), (hub, "HfApi")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a Hub call was made"))
    return tmp_path / "hf-cache"


@pytest.fixture
def clip_reads(monkeypatch) -> list[Path]:
    """The clips that motif-lite's code reads through `read_clip`, in order. Every motif_lite module holding it by
    name gets the counting one (a caller importing it at the top of its module would hold the uncounted one)."""
    from motif_lite.io import clip as clip_module

    reads: list[Path] = []
    uncounted = clip_module.read_clip

    def counted(path, **known):
        reads.append(Path(path))
        return uncounted(path, **known)

    for name, module in list(sys.modules.items()):
        if name.startswith("motif_lite") and getattr(module, "read_clip", None) is uncounted:
            monkeypatch.setattr(module, "read_clip", counted)
    return reads


@pytest.fixture
def no_weights(monkeypatch):
    """Any weight load is a test failure."""
    targets = ("encoders.text.load_text_encoder", "pipeline.loading.load_vae", "pipeline.recipe.load_transformer")
    for target in (*targets, "pipeline.recipe.load_gguf_transformer"):
        monkeypatch.setattr(f"motif_lite.{target}", lambda *a, **k: pytest.fail("weights were loaded"))


@pytest.fixture
def allocator_config_seen(monkeypatch) -> list[str | None]:
    """PYTORCH_CUDA_ALLOC_CONF as each command run through `cli.main` saw it once it set it (`main` puts the
    variable back as it was when the command ends), starting with the variable unset."""
    import os

    from motif_lite import cli

    monkeypatch.delenv(cli.ALLOCATOR_CONFIG, raising=False)
    seen: list[str | None] = []
    sets_it = cli.use_expandable_segments

    def seeing() -> None:
        sets_it()
        seen.append(os.environ.get(cli.ALLOCATOR_CONFIG))

    monkeypatch.setattr(cli, "use_expandable_segments", seeing)
    return seen


@pytest.fixture
def temp_dir(tmp_path, monkeypatch) -> Path:
    """tempfile's temporary directory, in this test's own folder."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# The host memory available to every test's plans: a figure of its own, not this machine's. Each plan reads the
# memory available now (`planner.available_ram`): where a plan's host peak is above it, streamed blocks get staging
# buffers instead of page-locked homes (another host peak) and the plan warns. On a loaded machine that figure moves
# from one run of a test to the next, and with it the plan the test compares. A test of the choices made by the memory
# available patches `planner.available_ram` itself (its patch comes after this one) or passes figures of its own
# (`plan_host`'s available_bytes, as tests/test_planner.py and tests/test_platforms.py do).
ROOMY_HOST_BYTES = 256 * 2**30


@pytest.fixture
def roomy_host(monkeypatch) -> None:
    """Every plan the test makes sees a host with `ROOMY_HOST_BYTES` available, whatever this machine has."""
    from motif_lite.runtime import planner

    monkeypatch.setattr(planner, "available_ram", lambda: ROOMY_HOST_BYTES)


@pytest.fixture(autouse=True)
def _plans_see_a_roomy_host(roomy_host) -> None:
    """Every test's plans see `roomy_host`, not this machine's available memory, which moves with its load."""
