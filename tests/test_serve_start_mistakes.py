"""`motif-lite serve` started the way users of other servers start theirs: a URL or an address with its port as
--host, a port another server holds, a data folder on a read-only disk, and a video uploaded as the first frame.
Each is one line saying which flag or field to give, before the model loads."""

from __future__ import annotations

import errno
import socket

import numpy as np
import pytest

pytest.importorskip("uvicorn")  # the server extra: a GPU machine without it runs the rest of the suite

from motif_lite import cli  # noqa: E402
from motif_lite.cli.serve_flag_values import data_folder_problem  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402
from motif_lite.io.image import not_an_image  # noqa: E402
from motif_lite.io.video import write_video  # noqa: E402
from motif_lite.server.runner import bind  # noqa: E402

EXAMPLES = "give e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every address of this machine)"


@pytest.mark.parametrize(
    ("host", "flags"),
    [
        ("http://0.0.0.0:8188/", "--host 0.0.0.0 --port 8188"),  # ComfyUI's address as its page shows it
        ("localhost:8080", "--host localhost --port 8080"),
        ("[::1]:8080", "--host ::1 --port 8080"),
        ("http://0.0.0.0", "--host 0.0.0.0"),
        ("localhost:99999", "--host localhost"),  # a port out of range: the address is still worth naming
        ("http://:8080", EXAMPLES),  # no address to name: the examples instead of "--host  --port 8080"
        ("http://[::1:8080", EXAMPLES),  # a URL urllib cannot split is still a URL, not a name to resolve
    ],
)
def test_a_host_given_as_a_url_or_with_its_port_is_told_the_flags(host, flags, capsys, monkeypatch):
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["serve", "--host", host])
    said = capsys.readouterr().err
    assert stopped.value.code == 2 and f"--host: takes an address alone (no http://, no :port), got {host!r}" in said
    assert said.rstrip().endswith(f": {flags}")


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::1", "fe80::1", "localhost", "my-box.local"])
def test_addresses_alone_are_taken_as_given(host):
    from motif_lite.cli.serve_flag_values import host_name

    assert host_name(host) == host


def test_a_port_another_server_holds_says_to_give_another():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MotifLiteError) as error:
            bind("127.0.0.1", port)
    said = str(error.value)
    assert said.startswith(f"cannot listen on 127.0.0.1:{port}: ") and "\n" not in said
    assert said.endswith("(another server listens there): give another --port, or --port 0 for any free one")


def test_a_data_folder_that_cannot_be_written_says_why_in_words_and_the_flag():
    # As root a read-only folder is writable; the error the OS gives on a read-only disk stands in for it.
    said = data_folder_problem("/mnt/ro/data", OSError(errno.EROFS, "Read-only file system", "/mnt/ro/data"))
    assert said == (
        "cannot use the data folder /mnt/ro/data: Read-only file system; give --data a folder you can write to"
    )


def test_a_video_uploaded_as_the_first_frame_is_told_the_extend_field(tmp_path):
    write_video(np.zeros((5, 32, 48, 3), np.uint8), tmp_path / "clip.mp4", fps=24)
    said = not_an_image((tmp_path / "clip.mp4").read_bytes()[:1024], None)
    assert "to go on from the clip, send it as extend instead of input_reference" in said
    assert "--extend" not in said  # the server's client types no flags


def test_a_busy_port_is_not_mistaken_for_a_missing_address():
    # EADDRINUSE and EADDRNOTAVAIL are told apart: each names its own fix.
    from motif_lite.server.runner import _why_not_bound

    busy = _why_not_bound(OSError(errno.EADDRINUSE, "Address already in use"), "127.0.0.1", 8080)
    elsewhere = _why_not_bound(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "10.9.9.9", 8080)
    low = _why_not_bound(OSError(errno.EACCES, "Permission denied"), "0.0.0.0", 80)
    assert busy.startswith("Address already in use (another server") and "--host" not in busy  # no "[Errno 98]"
    assert "10.9.9.9 is no address of this machine; give --host 127.0.0.1" in elsewhere
    assert "ports below 1024 need root" in low


@pytest.mark.parametrize("port", [1024, 8080])
def test_a_port_refused_from_1024_up_is_not_said_to_need_root(port):
    # Only ports below 1024 are privileged; a refusal of another port (a security policy) is the OS's reason alone.
    from motif_lite.server.runner import _why_not_bound

    said = _why_not_bound(OSError(errno.EACCES, "Permission denied"), "0.0.0.0", port)
    assert said == "Permission denied"


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("--gguf", "is the partial file of a quantizer run"),
        ("--text-encoder-gguf", "is the partial file of a quantizer run"),
        ("--gguf TQ1_0", "--gguf TQ1_0: motif-lite cannot run a file of GGUF type TQ1_0: --gguf Q2_K is the nearest"),
    ],
)
def test_a_refused_gguf_is_said_before_serving(
    shared_checkpoint_and_gguf, flag, said, no_network, tmp_path, capsys, monkeypatch
):
    # The model loads after "serving ...": a quantizer's partial OUT.gguf.tmp (or a type motif-lite cannot run)
    # was said only then, by the background load, the server left listening. Now: one line, exit 2, no port bound.
    from motif_lite.server import runner

    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    root, gguf = shared_checkpoint_and_gguf
    partial = tmp_path / "mine-Q8_0.gguf.tmp"
    partial.write_bytes(gguf.read_bytes())
    given = flag.split() if " " in flag else [flag, str(partial)]
    code = cli.main(["serve", "-m", str(root), *given, "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "serving" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ") and said in err, err
    if flag == "--gguf":  # the fix quantizes again from the -m given, as run's and check's do
        assert f"python -m motif_lite.quantize {root} -o {tmp_path / 'mine-Q8_0.gguf'}" in err, err


def test_a_signal_the_server_was_started_ignoring_stays_ignored():
    """`nohup motif-lite serve ... &` must outlive the SSH session that started it: SIGHUP, ignored from the start,
    stays ignored while the server runs (it used to stop the server, in order, when the session ended); SIGTERM,
    not ignored, still stops it in order."""
    import signal

    from motif_lite.cli.serve_stops import stop_in_order_on_signals

    class Server:
        loaded, stops = True, []

        def stop(self, signum: int) -> None:
            self.stops.append(signum)

    server = Server()
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_in_order_on_signals() as stops:
            stops.serving(server)
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            handler = signal.getsignal(signal.SIGTERM)
            assert callable(handler)
            handler(signal.SIGTERM, None)
        assert server.stops == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize(
    ("device", "said"),
    [
        ("mps", "device 'mps', an Apple silicon GPU (mps), is not supported"),
        ("hip", "PyTorch's ROCm build"),
        ("cuda", "device 'cuda' requested but CUDA is not available"),
    ],
)
def test_a_device_that_cannot_run_here_is_said_before_serving(
    shared_checkpoint, device, said, no_network, tmp_path, capsys, monkeypatch
):
    # `serve --device mps` on a Mac printed "serving ... on http://127.0.0.1:8080/", made its data folder, and only
    # then did the background load say the device was refused. Now: one line, exit 2, no port bound, no folder.
    import torch

    from motif_lite.server import runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine without a GPU, as a Mac is
    monkeypatch.setattr(runner, "bind", lambda *a: pytest.fail("bound the port"))
    data = tmp_path / "data"
    code = cli.main(["serve", "-m", str(shared_checkpoint[0]), "--device", device, "--data", str(data)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "serving" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ") and said in err, err
    assert not data.exists()


def test_the_gguf_header_is_freed_once_the_load_took_it(tmp_path, monkeypatch):
    # The header (the --gguf file memory-mapped) was held by serve's main and _serve for the server's whole life.
    import gc
    import weakref

    from motif_lite import checkpoint
    from motif_lite.cli import serve, serve_loading
    from motif_lite.server import runner

    class Header:  # stands in for the GGUFCheckpoint check_gguf_files reads
        pass

    seen = {}

    def load(args, config, loras, header_read):
        seen["header"] = weakref.ref(header_read)
        return None, None

    class Server:
        def __init__(self, store, config):
            pass

        def serve(self, sock, load):
            load()
            gc.collect()
            seen["alive_after_load"] = seen["header"]() is not None

    monkeypatch.setattr(checkpoint, "check_gguf_files", lambda *a: Header())
    monkeypatch.setattr(runner, "VideoServer", Server)
    monkeypatch.setattr(serve_loading, "load_served_pipeline", load)
    monkeypatch.setattr(serve, "_say_serving", lambda *a: None)
    code = cli.main(["serve", "-m", "x", "--port", "0", "--data", str(tmp_path / "data")])
    assert code == 0 and seen == {"header": seen["header"], "alive_after_load": False}, seen
