"""Under WSL2 (Linux in a VM on Windows): weights on a Windows drive are named once with the copy command, host memory
advice names .wslconfig, page-locking that CUDA refuses falls back to ordinary memory with one warning, Triton's
missing libcuda.so gets the WSL fix, and `motif-lite check` says WSL2. No WSL machine is needed: the /proc files
are replaced by files with a WSL machine's contents, and the Windows drive is a folder that the mount table names."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from motif_lite.checkup.report import Checkup
from motif_lite.io import wsl
from motif_lite.runtime.host_memory import HostNeeds, plan_host
from motif_lite.runtime.kernels import FallbackOp, KernelFailedError
from motif_lite.runtime.streaming import LayerStreamer, StreamingConfig

WSL_KERNEL = "5.15.167.4-microsoft-standard-WSL2\n"
LINUX_KERNEL = "6.8.0-45-generic\n"
# Triton 3's error (triton/backends/nvidia/driver.py, libcuda_dirs) when ldconfig does not list libcuda.so.1.
TRITON_LIBCUDA = (
    'libcuda.so cannot found!\nPlease make sure GPU is set up and then run "/sbin/ldconfig" (requires sudo) to '
    "refresh the linker cache."
)
GiB = 1024**3


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def wsl_mounts(drive: Path) -> str:
    """A WSL2 machine's /proc/mounts, with its C: drive mounted at `drive` (spaces escaped as the kernel does)."""
    point = str(drive).replace(" ", "\\040")
    return (
        "/dev/sdc / ext4 rw,relatime,discard,errors=remount-ro,data=ordered 0 0\n"
        "none /usr/lib/wsl/drivers 9p ro,nosuid,nodev,noatime,aname=drivers;fmask=222;dmask=222,mmap,"
        "access=client,msize=65536,trans=fd,rfd=8,wfd=8 0 0\n"
        f"C:\\134 {point} 9p rw,noatime,dirsync,aname=drvfs;path=C:\\;uid=1000;gid=1000;symlinkroot=/mnt/,mmap,"
        "access=client,msize=65536,trans=fd,rfd=5,wfd=5 0 0\n"
    )


@pytest.fixture
def under_wsl(monkeypatch, tmp_path) -> Path:
    """This machine as a WSL2 one: its kernel release says so, and tmp_path/"mnt c" is its Windows C: drive."""
    drive = tmp_path / "mnt c"
    drive.mkdir()
    (tmp_path / "osrelease").write_text(WSL_KERNEL)
    (tmp_path / "mounts").write_text(wsl_mounts(drive))
    monkeypatch.setattr(wsl, "OSRELEASE", tmp_path / "osrelease")
    monkeypatch.setattr(wsl, "MOUNTS", tmp_path / "mounts")
    return drive


@pytest.fixture
def plain_linux(monkeypatch, tmp_path) -> None:
    (tmp_path / "osrelease").write_text(LINUX_KERNEL)
    monkeypatch.setattr(wsl, "OSRELEASE", tmp_path / "osrelease")


def test_wsl_is_told_by_the_kernel_release(monkeypatch, tmp_path):
    assert wsl.is_wsl(WSL_KERNEL) and wsl.is_wsl("4.4.0-19041-Microsoft")  # WSL2, WSL1
    assert not wsl.is_wsl(LINUX_KERNEL) and not wsl.is_wsl("")
    monkeypatch.setattr(wsl, "OSRELEASE", tmp_path)  # a file that cannot be read (a folder): not WSL, no error
    assert not wsl.is_wsl()


def test_windows_drives_are_the_drvfs_mounts_only(tmp_path):
    mounts = wsl_mounts(Path("/mnt/my drive")) + "drvfs /mnt/d drvfs rw,noatime 0 0\n"
    assert wsl.windows_mounts(mounts) == ["/mnt/my drive", "/mnt/d"]  # not / nor WSL's own 9p driver share
    assert wsl.windows_mount_of(Path("/mnt/my drive/x.gguf"), ["/mnt/my drive"]) == "/mnt/my drive"
    assert wsl.windows_mount_of(Path("/mnt/my drivers/x.gguf"), ["/mnt/my drive"]) is None  # a prefix, not a parent
    assert wsl.windows_mount_of(Path("/mnt/d"), ["/mnt/d"]) == "/mnt/d"  # the drive itself (-m /mnt/d)
    # A folder mounted inside a drive's mount: the innermost mount holds the file.
    assert wsl.windows_mount_of(Path("/mnt/c/data/x.gguf"), ["/mnt/c", "/mnt/c/data"]) == "/mnt/c/data"


def test_a_weight_file_on_a_windows_drive_is_named_with_the_copy_command(tmp_path):
    drive = tmp_path / "c"
    (drive / "ComfyUI" / "models").mkdir(parents=True)
    gguf = drive / "ComfyUI" / "models" / "motif-Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    linux = tmp_path / "home" / "vae.safetensors"
    linux.parent.mkdir()
    linux.write_bytes(b"{}")
    mounts = wsl_mounts(drive)
    note = wsl.windows_drive_note([gguf, linux], mounts)
    assert note is not None and str(gguf) in note and str(linux) not in note
    assert f"mkdir -p ~/models; cp {gguf} ~/models/" in note
    assert wsl.windows_drive_note([linux], mounts) is None
    assert (
        "is on a Windows drive" in note
        and "Copy it under" in note
        and "pass the copy in place of the original " in note
    )
    assert wsl.windows_drive_note([gguf, gguf], mounts) == note  # the same file given twice is named once
    vae = drive / "vae.safetensors"
    vae.write_bytes(b"{}")
    both = wsl.windows_drive_note([gguf, vae], mounts)
    assert both.startswith(f"{gguf}, {vae} are on a Windows drive") and "Copy them under" in both
    assert f"cp {gguf} ~/models/; cp {vae} ~/models/; then pass the copies in place of the originals" in both
    assert wsl.windows_drive_note([gguf], "") is None  # no Windows drives: not WSL
    # A link under the Linux home to a file on the drive is read from the drive.
    (tmp_path / "home" / "linked.gguf").symlink_to(gguf)
    assert wsl.on_windows_drives([tmp_path / "home" / "linked.gguf"], mounts) == [tmp_path / "home" / "linked.gguf"]


def test_a_hugging_face_cache_on_a_windows_drive_is_copied_with_its_links_followed(tmp_path):
    snapshot = tmp_path / "c" / "hub" / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    note = wsl.windows_drive_note([snapshot], wsl_mounts(tmp_path / "c"))
    assert f"cp -rL {snapshot} ~/models/Motif-Video-2B" in note


def test_a_run_notes_a_checkpoint_on_a_windows_drive_before_loading(checkpoint, under_wsl):
    import shutil

    from motif_lite.checkpoint import locate_sources

    on_drive = under_wsl / "Motif-Video-2B"
    shutil.copytree(checkpoint, on_drive)
    notes = [note for note in locate_sources(on_drive).notes if "Windows drive" in note]
    assert len(notes) == 1 and f"cp -rL '{on_drive}' ~/models/Motif-Video-2B" in notes[0]
    assert not [note for note in locate_sources(checkpoint).notes if "Windows drive" in note]


def test_the_weights_read_from_the_checkpoint_folder_unless_every_component_is_replaced(tmp_path):
    from motif_lite.weight_checks import weight_locations

    gguf = tmp_path / "t.gguf"
    assert weight_locations(tmp_path, {"transformer"}, [gguf, None]) == [tmp_path, gguf]
    assert weight_locations(tmp_path, {"transformer", "text_encoder"}, [gguf]) == [tmp_path, gguf]  # the VAE's
    assert weight_locations(tmp_path, {"transformer", "text_encoder", "vae"}, [gguf]) == [gguf]
    assert weight_locations(None, set(), [gguf]) == [gguf]  # no checkpoint folder found


@pytest.fixture(scope="module")
def weight_files(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """Each component's weights as a file of its own, as a user might keep them: the transformer's and the text
    encoder's as Q8_0 GGUFs (our quantizer), the VAE's safetensors copied."""
    import shutil

    from motif_lite.quantize.cli import main as quantize

    folder = tmp_path_factory.mktemp("weights")
    files = {"gguf": folder / "t-Q8_0.gguf", "text_encoder_gguf": folder / "te-Q8_0.gguf"}
    assert quantize([str(checkpoint), "-o", str(files["gguf"]), "--type", "Q8_0", "--quiet"]) == 0
    te = ["--component", "text_encoder", "-o", str(files["text_encoder_gguf"])]
    assert quantize([str(checkpoint), *te, "--type", "Q8_0", "--quiet"]) == 0
    files["vae"] = folder / "wan_vae.safetensors"
    shutil.copy(checkpoint / "vae" / "diffusion_pytorch_model.safetensors", files["vae"])
    return files


def test_each_weight_file_on_a_windows_drive_is_named_by_run_and_check(
    checkpoint, weight_files, under_wsl, monkeypatch, tmp_path
):
    import shutil

    from motif_lite.checkpoint import locate_sources
    from motif_lite.checkup import check_setup

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the linked checkpoint's folder
    on_drive = {name: Path(shutil.copy(file, under_wsl)) for name, file in weight_files.items()}
    given = dict(gguf=on_drive["gguf"], text_encoder_gguf=on_drive["text_encoder_gguf"])
    # The checkpoint under the Linux home, every weight file on the drive: each file is named.
    (note,) = [n for n in locate_sources(checkpoint, **given, weights={"vae": on_drive["vae"]}).notes if "Windows" in n]
    report = check_setup(checkpoint, **given, weights={"vae": on_drive["vae"]})
    warned = {finding.subject: finding.message for finding in report.warnings}["weights on a Windows drive"]
    for said in (note, warned):
        assert all(str(file) in said for file in on_drive.values()) and str(checkpoint) not in said, said
    # The checkpoint on the drive, the VAE's file from the home: the folder is named, not the links that a run
    # makes of it under the cache (they lie under the Linux home, but the weights they lead to do not).
    ckpt = under_wsl / "ckpt"
    shutil.copytree(checkpoint, ckpt)
    (note,) = [n for n in locate_sources(ckpt, weights={"vae": weight_files["vae"]}).notes if "Windows" in n]
    report = check_setup(ckpt, weights={"vae": weight_files["vae"]})
    warned = {finding.subject: finding.message for finding in report.warnings}["weights on a Windows drive"]
    for said in (note, warned):
        assert said.startswith(f"{ckpt} is on a Windows drive"), said
    # A weight file named on the drive that is not there: its own problem, not a slow drive.
    report = check_setup(checkpoint, weights={"vae": under_wsl / "missing.safetensors"})
    assert "weights on a Windows drive" not in {finding.subject for finding in report.findings}


def test_check_says_wsl2_and_warns_of_weights_on_a_windows_drive(checkpoint, under_wsl, tmp_path):
    import shutil

    from motif_lite.checkup import check_setup
    from motif_lite.checkup.environment import check_environment
    from motif_lite.runtime.host_memory import total_ram
    from motif_lite.units import memory_size

    report = Checkup()
    check_environment(report)
    said = {finding.subject: finding.message for finding in report.findings}
    assert ".wslconfig" in said["WSL2"]
    assert f"this VM has {memory_size(total_ram())} of memory" in said["WSL2"]  # all of it, not what is free now
    on_drive = under_wsl / "ckpt"
    shutil.copytree(checkpoint, on_drive)
    report = check_setup(on_drive)
    warned = {finding.subject: finding.message for finding in report.warnings}
    assert str(on_drive) in warned["weights on a Windows drive"]
    assert "weights on a Windows drive" not in {finding.subject for finding in check_setup(checkpoint).warnings}


def test_no_gpu_under_wsl_points_to_the_windows_driver(under_wsl, monkeypatch):
    from motif_lite.checkup.environment import check_environment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = Checkup()
    check_environment(report)
    assert "NVIDIA driver for Windows" in {f.subject: f.message for f in report.warnings}["GPU"]
    # What this machine's library folders show (here: no /usr/lib/wsl/lib), as tests/test_sysmem.py checks per case.
    assert wsl.wsl_driver_problem() in {f.subject: f.message for f in report.warnings}["GPU"]
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU-only torch: the driver is not what is missing
    report = Checkup()
    check_environment(report)
    assert "NVIDIA driver for Windows" not in {f.subject: f.message for f in report.warnings}["GPU"]


def test_check_under_wsl_names_a_linux_driver_found_in_the_library_folders(under_wsl, monkeypatch, tmp_path):
    """`check` looks in the Linux driver's folders: a libcuda.so there hides the Windows driver's."""
    from motif_lite.checkup.environment import check_environment

    windows_lib, linux_lib = tmp_path / "wsl-lib", tmp_path / "x86_64-linux-gnu"
    for folder in (windows_lib, linux_lib):
        folder.mkdir()
        (folder / "libcuda.so.1").write_bytes(b"")
    monkeypatch.setattr(wsl, "WSL_LIBCUDA", str(windows_lib))
    monkeypatch.setattr(wsl, "LINUX_LIB_FOLDERS", (str(linux_lib),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = Checkup()
    check_environment(report)
    said = {f.subject: f.message for f in report.warnings}["GPU"]
    assert f"a Linux NVIDIA driver is installed inside WSL ({linux_lib / 'libcuda.so.1'})" in said


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])  # the Linux driver's machines: PCs, GH200 / DGX Spark
def test_the_linux_driver_folders_hold_each_machines_multiarch_folder(machine):
    """Ubuntu's NVIDIA driver packages put libcuda.so in /usr/lib/<machine>-linux-gnu (Debian's multiarch)."""
    assert f"/usr/lib/{machine}-linux-gnu" in wsl.LINUX_LIB_FOLDERS


def test_plain_linux_gets_no_wsl_row_nor_wsl_advice(plain_linux, monkeypatch):
    from motif_lite.checkup.environment import check_environment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    report = Checkup()
    check_environment(report)
    assert "WSL2" not in {finding.subject for finding in report.findings}
    assert "WSL" not in {f.subject: f.message for f in report.warnings}["GPU"]


def test_total_ram_is_the_machines_memory():
    import os

    from motif_lite.runtime.host_memory import total_ram

    # MemTotal, which is what the kernel counts as physical pages (not MemAvailable, what is free now).
    assert total_ram() == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


HOST_NEEDS = HostNeeds(
    cuda=True, text_bytes=8 * GiB, text_staging_bytes=0, transformer_bytes=GiB, streamed_bytes=0,
    streamed_pinned_bytes=0, block_staging_bytes=0, vae_bytes=0, video_bytes=0, activation_bytes=0,
)  # fmt: skip


def test_host_memory_advice_names_wslconfig_under_wsl_only(monkeypatch, tmp_path):
    peak = plan_host(HOST_NEEDS, None).peak_bytes
    for kernel, named in ((WSL_KERNEL, True), (LINUX_KERNEL, False)):
        (tmp_path / "osrelease").write_text(kernel)
        monkeypatch.setattr(wsl, "OSRELEASE", tmp_path / "osrelease")
        with pytest.warns(UserWarning, match="available now") as said:
            plan_host(HOST_NEEDS, None, available_bytes=peak - 1)
        assert ("[wsl2] memory=" in str(said[0].message)) is named
        with pytest.raises(Exception, match="--ram") as refused:
            plan_host(HOST_NEEDS, peak - 1)
        assert (".wslconfig" in str(refused.value)) is named


def layers(count: int = 3) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(4, 4) for _ in range(count))


def refuse_pinning(monkeypatch) -> list[int]:
    """Page-locking fails as CUDA on WSL2 can make it fail: every pinned allocation raises. Returns the number of
    tries so far (a list of one count)."""
    empty = torch.empty
    tries = [0]

    def no_pin_memory(self, *args, **kwargs):
        tries[0] += 1
        raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")

    def empty_unpinned(*args, pin_memory: bool = False, **kwargs):
        if pin_memory:
            no_pin_memory(None)
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pin_memory)
    monkeypatch.setattr(torch, "empty", empty_unpinned)
    return tries


def test_streamed_homes_stay_in_ordinary_memory_when_pinning_fails_with_one_warning(monkeypatch, under_wsl):
    tries = refuse_pinning(monkeypatch)
    model = layers()
    weights = [layer.weight.detach().clone() for layer in model]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("default")
        streamer = LayerStreamer(model, StreamingConfig("cuda", prefetch=False))  # no CUDA call until a forward
    assert len(said) == 1, [str(w.message) for w in said]
    assert tries == [1]  # the other tensors are not tried again
    message = str(said[0].message)
    assert "CUDA error: out of memory" in message and "\n" not in message
    assert "--ram" in message and "under WSL2, CUDA limits page-locked memory" in message
    for layer, weight in zip(model, weights, strict=True):
        assert not layer.weight.is_pinned() and torch.equal(layer.weight, weight)
    streamer.remove()


def test_a_home_already_page_locked_is_not_locked_again(monkeypatch, under_wsl):
    tries = refuse_pinning(monkeypatch)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: True)  # as a pinned CPU tensor reads on CUDA
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LayerStreamer(layers(), StreamingConfig("cuda", prefetch=False)).remove()
    assert tries == [0]


def test_an_error_without_words_is_named_by_its_type(plain_linux):
    from motif_lite.runtime.streaming import pinning_failed

    with pytest.warns(RuntimeWarning, match=r"page-locking host memory for streamed weights failed \(RuntimeError\)"):
        pinning_failed(RuntimeError(""))


def test_staging_with_only_one_page_locked_buffer_copies_from_the_homes(monkeypatch, plain_linux):
    # The first buffer is locked, the second refused (the limit reached between them): no half-pinned staging.
    empty = torch.empty
    calls = []

    def second_refused(*args, pin_memory: bool = False, **kwargs):
        calls.append(pin_memory)
        if pin_memory and calls.count(True) == 2:
            raise RuntimeError("CUDA error: out of memory")
        return empty(*args, **kwargs)

    monkeypatch.setattr(torch, "empty", second_refused)
    with pytest.warns(RuntimeWarning, match="page-locking host memory for streamed weights failed"):
        streamer = LayerStreamer(layers(), StreamingConfig("cuda", prefetch=False, staging=True))
    assert streamer.staging is None and calls.count(True) == 2


def test_staging_without_page_locked_buffers_copies_from_the_homes(monkeypatch, plain_linux):
    refuse_pinning(monkeypatch)
    with pytest.warns(RuntimeWarning, match="page-locking host memory for streamed weights failed") as said:
        streamer = LayerStreamer(layers(), StreamingConfig("cuda", prefetch=False, staging=True))
    assert streamer.staging is None
    assert "--ram" not in str(said[0].message) and "WSL2" not in str(said[0].message)  # staged already; not WSL


def libcuda_missing(*args):
    raise AssertionError(TRITON_LIBCUDA)


def test_triton_that_fails_at_import_for_libcuda_gets_the_wsl_fix(monkeypatch, under_wsl):
    from types import SimpleNamespace

    from motif_lite.runtime import kernels

    # Triton's driver can look for libcuda.so as the kernel modules are imported (`--kernels auto`'s reason).
    monkeypatch.setattr(kernels, "importlib", SimpleNamespace(import_module=libcuda_missing))
    assert "export TRITON_LIBCUDA_PATH=/usr/lib/wsl/lib" in kernels._triton_import_error()


def test_triton_missing_libcuda_gets_the_wsl_fix(monkeypatch, under_wsl):
    monkeypatch.setattr(FallbackOp, "kernel_can_run", staticmethod(lambda tensors: True))  # as on a GPU
    op = FallbackOp("rms_norm_rope", libcuda_missing, lambda x: x)
    with pytest.warns(RuntimeWarning, match="falls back to torch") as said:
        op(torch.ones(2))
    assert "export TRITON_LIBCUDA_PATH=/usr/lib/wsl/lib" in str(said[0].message)
    with pytest.raises(KernelFailedError, match="TRITON_LIBCUDA_PATH=/usr/lib/wsl/lib"):
        FallbackOp("rms_norm_rope", libcuda_missing, lambda x: x, strict=True)(torch.ones(2))


def test_other_kernel_errors_and_plain_linux_get_no_wsl_fix(under_wsl):
    assert wsl.libcuda_fix("out of resource: shared memory") is None
    assert wsl.libcuda_fix(TRITON_LIBCUDA, osrelease=LINUX_KERNEL) is None
    assert "TRITON_LIBCUDA_PATH" in wsl.libcuda_fix("/usr/bin/ld: cannot find -lcuda")


@pytest.mark.cuda
@pytest.mark.parametrize("staging", [False, True])
def test_a_gpu_streams_from_ordinary_memory_as_it_does_from_page_locked(monkeypatch, plain_linux, staging):
    """On a GPU: with page-locking refused (as CUDA on WSL2 may), the streamed forward runs, from ordinary memory,
    and gives what the page-locked one gives."""
    from speed_helpers import tiny_transformer
    from tiny_config import forward, inputs

    from motif_lite.runtime.streaming import apply_block_streaming

    x = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in inputs().items()}
    config = StreamingConfig("cuda", resident_blocks=0, staging=staging)
    pinned_model = tiny_transformer(quantized=True)
    apply_block_streaming(pinned_model, config)
    expected = forward(pinned_model, x)
    refuse_pinning(monkeypatch)
    model = tiny_transformer(quantized=True)
    with pytest.warns(RuntimeWarning, match="page-locking"):
        apply_block_streaming(model, config)
    assert torch.equal(forward(model, x), expected)
