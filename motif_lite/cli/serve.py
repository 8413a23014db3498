"""`motif-lite serve`: the OpenAI Videos API, a persistent job queue and a web page over one loaded model.

    motif-lite serve --gguf Q4_K_M --data ~/motif-videos

FastAPI and uvicorn come with the `server` extra and are imported only when the command runs (see
docs/server.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import signal
import socket
import sqlite3
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.choices import lines_size, split_size
from motif_lite.cli.flag_numbers import crf_value, positive_int, positive_number
from motif_lite.cli.run_flags import (
    add_attention_flags,
    add_checkpoint_flags,
    add_device_flags,
    add_speed_flags,
    add_text_encoder_flags,
    add_weight_file_flags,
    lora_value,
    take_weight_flags,
)
from motif_lite.errors import MotifLiteError
from motif_lite.origins import origin_as_sent
from motif_lite.paths import path_arg, user_path, user_path_kept_here
from motif_lite.request import REQUEST_DEFAULTS, SIZE_MULTIPLE, GenerationRequest
from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS
from motif_lite.shell_syntax import variable_from_home_file
from motif_lite.stopping import STOP_SIGNALS, Terminated, not_ignored

if TYPE_CHECKING:  # torch and the pipeline load only when the command runs
    import torch

    from motif_lite.checkpoint import GGUFFilesRead, ModelSources
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.server.app import ServerConfig
    from motif_lite.server.submission import TooLong
    from motif_lite.settings import Settings
    from motif_lite.weights.lora_updates import LoRAFile

API_KEY_VARIABLE = "MOTIF_LITE_API_KEY"
MAX_PORT = 65535


def epilog() -> str:
    """The end of `serve --help`: examples, the key's one in the user's shell (`shell_syntax`)."""
    key_from_file = variable_from_home_file(API_KEY_VARIABLE, ".motif-lite-key", "motif-lite serve --host 0.0.0.0")
    return f"""\
examples:
  motif-lite serve                                     (http://127.0.0.1:8080/: the page and the API)
  motif-lite serve --gguf Q4_K_M --data ~/motif-videos
  {key_from_file}   (a key that ps does not show)
  motif-lite serve --gguf Q4_K_M --compile --attention int8      (faster jobs: compiled once per video size)

API: POST/GET /v1/videos, GET/DELETE /v1/videos/ID, GET /v1/videos/ID/content, as the openai SDK's
client.videos calls them. The key can also come from ${API_KEY_VARIABLE}. See docs/server.md.
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `serve` to the `motif-lite` subcommands."""
    serve = commands.add_parser(
        "serve",
        help="serve an OpenAI-compatible video API with a job queue and a web page",
        description="Serve Motif-Video 2B: the OpenAI Videos API, a persistent job queue and a web page.",
        usage="motif-lite serve [options]   (every option: motif-lite serve --help)",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_server_flags(serve)
    _add_model_flags(serve)
    # Settings of the loaded model, the same for every job, with run's flags and meanings.
    add_text_encoder_flags(serve)
    add_weight_file_flags(serve)
    add_attention_flags(serve)
    add_speed_flags(serve)
    serve.set_defaults(handler=main)


def _add_server_flags(serve: argparse.ArgumentParser) -> None:
    s = serve.add_argument_group("server")
    s.add_argument("--host", type=host_name, default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")  # fmt: skip
    s.add_argument("--port", type=port_number, default=8080, help="port (0 = any free port, printed; default 8080)")
    s.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the key clients must send on the API ('Authorization: Bearer KEY'; default: ${API_KEY_VARIABLE})",
    )
    s.add_argument("--data", type=path_arg, default="motif-lite-data", metavar="DIR",
                   help="folder for the job database and the videos (default ./motif-lite-data)")  # fmt: skip
    s.add_argument("--max-queue", type=positive_int, default=100, metavar="N",
                   help="jobs queued or running before 429 (default 100)")  # fmt: skip
    s.add_argument("--max-upload-mb", type=positive_mib, default=20, metavar="MB",
                   help="largest first-frame image in MiB (default 20)")  # fmt: skip
    s.add_argument("--max-video-upload-mb", type=video_upload_mib, default=100, metavar="MB",
                   help=f"largest uploaded video to extend in MiB, {MIN_VIDEO_UPLOAD_MB}-{MAX_VIDEO_UPLOAD_MB} "
                   "(default 100: over a minute of a phone's 720p)")  # fmt: skip
    s.add_argument(
        "--max-video",
        type=parse_max_video,
        metavar="WxHxF",
        help="largest video a job may ask for; the memory plan is made for it "
        "(default with a plan, i.e. on CUDA or with --vram: 1280x736x121; otherwise no size limit, but on the CPU "
        "a job estimated over ~10 minutes is refused)",
    )
    s.add_argument(
        "--crf",
        type=crf_value,
        metavar="N",
        help="H.264 constant-rate factor, 0-51, of the .mp4 of every job that gives no 'crf' of its own; lower = "
        "better and larger (default 18; 28: small files to share, 12: near-lossless ones to edit)",
    )
    s.add_argument("--cors-origin", action="append", type=cors_origin, metavar="ORIGIN",
                   help="allow browser pages from ORIGIN to call the API (repeatable; default: none)")  # fmt: skip
    # run's -p, out of habit: refused with where prompts go (hidden; not --prompt, whose presence would make an
    # unknown word on this command line pass for an unquoted prompt in the unknown-argument message).
    s.add_argument("-p", nargs="*", action=PromptPerJob, help=argparse.SUPPRESS)


class PromptPerJob(argparse.Action):
    """`serve -p ...`: the server takes no prompt; each job brings its own."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        raise argparse.ArgumentError(
            self,
            'the server takes no prompt: each job brings its own, in POST /v1/videos ({"prompt": ...}), '
            "client.videos.create(prompt=...) or the web page the server serves (docs/server.md)",
        )


def _add_model_flags(serve: argparse.ArgumentParser) -> None:
    m = serve.add_argument_group("model and runtime")
    add_checkpoint_flags(m)
    add_device_flags(
        m,
        device_help="auto, cpu, cuda or cuda:N (default auto)",
        vram_help="device memory budget (default: the GPU's free memory; CPU: no limit)",
    )
    m.add_argument("--lora", type=lora_value, action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a LoRA applied to the transformer for every job, as for run (repeatable)")  # fmt: skip
    m.add_argument("--lora-dir", type=path_arg, metavar="DIR",
                   help="a folder of LoRA files jobs may name in their 'loras' field (default: none; jobs then run "
                   "with --lora's)")  # fmt: skip


# The server flags' types: argparse refuses a bad value as it reads the flags, before the port is bound.


def parse_max_video(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text.strip())
    if match is None or min(int(g) for g in match.groups()) < 1:
        raise argparse.ArgumentTypeError(f"must look like 1280x736x121 (width x height x frames), got {text!r}"
                                         f"{_max_video_meant(text)}")  # fmt: skip
    if min(int(match[1]), int(match[2])) < SIZE_MULTIPLE:  # no video is narrower: a job given no size got a 400
        raise argparse.ArgumentTypeError(
            f"must be at least {SIZE_MULTIPLE}x{SIZE_MULTIPLE} (width x height x frames), got {text!r}"
        )
    return int(match[1]), int(match[2]), int(match[3])


def _max_video_meant(text: str) -> str:
    """The --max-video a size without its frames (`1280x720`, `720p`) or with other separators (Wan's `1280*720*121`)
    most likely means, as the end of the refusal; "" when none."""
    if (size := split_size(text) or lines_size(text)) is not None:
        frames = REQUEST_DEFAULTS.frames
        return f"; with the frames too, e.g. {size[0]}x{size[1]}x{frames} ({frames} frames, the official length)"
    sides = re.fullmatch(r"\s*(\d+)\s*[x*X\u00d7,:]\s*(\d+)\s*[x*X\u00d7,:]\s*(\d+)\s*", text)
    return "" if sides is None or "0" in (sides[1], sides[2], sides[3]) else f"; written {'x'.join(sides.groups())}"


def cors_origin(text: str) -> str:
    """--cors-origin: `*` or an origin as browsers send it (scheme://host[:port]), which the CORS check compares
    exactly: one copied from the address bar with its trailing slash or path never matched, and every preflight got
    400, as one with an upper-case name, a name not in punycode, a short address (127.1) or its scheme's own port
    did (a browser sends none of them). Refused as argparse refuses a bad --port, with serve's usage."""
    if text == "*":
        return text
    as_sent = origin_as_sent(text)
    if text == as_sent:
        return text
    meant = f" (did you mean {as_sent}?)" if as_sent else ""
    # The messages write `--cors-origin '*'` for POSIX shells; cmd passes single quotes on as part of the value.
    inside = text[1:-1] if len(text) > 2 and text[0] == text[-1] == "'" else None
    if inside is not None and (unquoted := "*" if inside == "*" else origin_as_sent(inside)):
        meant = f" (did you mean {unquoted}? cmd keeps single quotes in the value: give it without them)"
    if text.strip().lower() == "null":  # what a page opened from a file or in a sandboxed frame sends
        meant = (" (null is the origin of a file opened in the browser, and of a sandboxed frame, which any site can "
                 "make: to let such a page call the server, give * with --api-key, and the page the key)")  # fmt: skip
    raise argparse.ArgumentTypeError(
        f"must be an origin as a browser sends it, scheme://host[:port] without a path or trailing "
        f"slash, e.g. https://app.example.com, or * for any; got {text!r}{meant}"
    )


def host_name(text: str) -> str:
    """A name the resolver can look up: it encodes the name (IDNA) first, and one it cannot encode (a lone surrogate
    from a terminal in another encoding, an empty label as in a..b) raised a UnicodeError traceback. A URL or an
    address with its port (`http://0.0.0.0:8188`, `localhost:8080`, as other servers' docs write them) is told the
    flags to give: the resolver only said "Name or service not known"."""
    examples = "give e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every address of this machine)"
    address, port = _address_and_port(text)
    if address != text:
        flags = f"--host {address}" + (f" --port {port}" if port is not None else "") if address else examples
        raise argparse.ArgumentTypeError(f"takes an address alone (no http://, no :port), got {text!r}: {flags}")
    try:
        text.encode("idna")
    except UnicodeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address: {examples}") from None
    return text


def _address_and_port(text: str) -> tuple[str, int | None]:
    """The address and the port in a URL (`http://0.0.0.0:8188/`) or in `host:port` (`[::1]:8080` for IPv6); `text`
    and None when it is neither (an IPv6 address alone, `::1`, has colons but no port)."""
    if "://" not in text and re.fullmatch(r"(\[[^\]]*\]|[^:]*):\d+", text) is None:
        return text, None
    try:
        parts = urllib.parse.urlsplit(text if "://" in text else f"//{text}")
        address = parts.hostname or ""
    except ValueError:  # an unbalanced bracket: a URL names no address to give; else the resolver's message follows
        return ("" if "://" in text else text), None
    try:
        return address, parts.port
    except ValueError:  # a port out of range: the address alone is still worth naming
        return address, None


def port_number(text: str) -> int:
    """0-65535: the resolver would take 99999 as 99999 % 65536 and start the server elsewhere without a word."""
    try:
        port = int(text)
    except ValueError:
        port = None
    if port is None or not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"must be 0-{MAX_PORT} (0 = any free port), got {text}")
    return port


def positive_mib(text: str) -> float:
    return positive_number(text, "MiB", text)


MIN_VIDEO_UPLOAD_MB, MAX_VIDEO_UPLOAD_MB = 1, 4096


def video_upload_mib(text: str) -> float:
    """--max-video-upload-mb: under 1 MiB no clip worth extending fits; over 4 GiB a single request would fill a
    disk (the upload is spooled to a temporary file, then copied into the data folder)."""
    value = positive_mib(text)
    if not MIN_VIDEO_UPLOAD_MB <= value <= MAX_VIDEO_UPLOAD_MB:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_VIDEO_UPLOAD_MB} to {MAX_VIDEO_UPLOAD_MB} MiB (a 5-second 720p clip is a few MiB), got "
            f"{text}"
        )
    return value


def _check_server_extra() -> None:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        try:
            __import__(module)
        except ImportError as exc:
            raise MotifLiteError(
                f"motif-lite serve needs the server extra ({module} is not installed): "
                'pip install -e ".[server]" in a clone, or pip install "motif-lite[server]"'
            ) from exc


def main(args: argparse.Namespace) -> int:
    """The `serve` handler: check the flags and the port, open the data folder, serve at once while the model
    loads (once), then run the jobs. The stop signals stop it in order from its first line to its last
    (`_stop_in_order_on_signals`): `docker stop` during the checks before the port is bound, which take seconds
    (torch is imported), killed it, and a container's first process ignored it until the SIGKILL."""
    with _stop_in_order_on_signals() as stops:
        try:
            return _checked_and_served(args, stops)
        except Terminated:  # before the server ran a job: no job to put back, an orderly stop all the same
            print("stopped", file=sys.stderr)
            return 0


def _checked_and_served(args: argparse.Namespace, stops: ServerStops) -> int:
    from motif_lite.cli import use_expandable_segments

    use_expandable_segments()  # before torch starts CUDA, as for run: the memory plan assumes it
    from motif_lite.cli.common import download_hint_repeats, lora_args
    from motif_lite.weights.lora_values import warn_of_unusual_strengths

    # The flags' own checks first: a typo is said before the server's packages are imported.
    args.weights = take_weight_flags(args)
    api_key = api_key_from(args.api_key, os.environ)
    args.cors_origins = tuple(args.cors_origin or ())  # each checked as it was parsed (`cors_origin`)
    loras = lora_args(args.lora)  # each file checked to exist before anything loads, as for run
    warn_of_unusual_strengths(loras)
    args.lora_dir = lora_folder(args.lora_dir)
    check_server_crf(args.crf)
    _check_server_extra()
    from motif_lite.checkpoint import check_gguf_files
    from motif_lite.devices import resolve_device
    from motif_lite.io.container import own_network_container
    from motif_lite.io.gguf_source import refuse_variant_flag
    from motif_lite.server.cross_site import is_loopback
    from motif_lite.server.jobs import JobStore
    from motif_lite.server.runner import bind

    # A wrong --gguf or --text-encoder-gguf file said now: the model loads after "serving", its errors after it.
    refuse_variant_flag(args.gguf)  # in serve's words: check_gguf_files says it in Python's
    # The --gguf file's header and the --text-encoder-gguf file, each read once: the load pops them from this list,
    # their only holder, so the memory-mapped header is not kept for the server's life.
    handed = [check_gguf_files(args.model, args.gguf, args.text_encoder_gguf)]
    resolve_device(args.device)  # --device mps or cuda without CUDA: said now, not by the load after "serving"
    if not is_loopback(args.host) and api_key is None:
        print(f"warning: listening on {args.host} without --api-key: anyone who can reach this address can use "
              "the server, and so can a web page that one of them opens (by pointing its name at the address); "
              "give --api-key KEY", file=sys.stderr)  # fmt: skip
    if is_loopback(args.host) and (container := own_network_container()) is not None:
        print(f"note: in this {container} container {args.host} is reachable from inside it only, unless the "
              "container uses the host's network: a port mapping (docker run -p, a Service) cannot reach it; give "
              "--host 0.0.0.0, with --api-key where others can reach the port", file=sys.stderr)  # fmt: skip
    sock = bind(args.host, args.port)  # a busy port fails now, not after the model has loaded
    try:
        try:
            store = JobStore(args.data)
        except (OSError, sqlite3.Error) as exc:
            raise MotifLiteError(data_folder_problem(args.data, exc)) from exc
        with download_hint_repeats(getattr(args, "argv", None)):
            _serve(args, sock, store, api_key, loras, stops, handed)
    finally:
        sock.close()
    return 0


def lora_folder(value: str | None) -> Path | None:
    """`--lora-dir`, checked to be a folder before anything loads. `./~` is a folder named `~` here, kept absolute:
    pathlib drops the `./`, and what is left would print as the home folder and be read again as it (`user_path`)."""
    if value is None:
        return None
    folder = user_path_kept_here(value)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MotifLiteError(f"--lora-dir {value} {what}: give it the folder of the LoRA files jobs may name")
    return folder


def check_server_crf(crf: int | None) -> None:
    """`--crf` against the codec of the videos the server writes (H.264: 0-51; the parser took VP9's 0-63)."""
    from motif_lite.io.video import check_crf
    from motif_lite.server.jobs import VIDEO_SUFFIX

    try:
        check_crf(f"video{VIDEO_SUFFIX}", crf)
    except MotifLiteError as exc:
        raise MotifLiteError(f"--crf {crf}: the server writes every video as {VIDEO_SUFFIX}, and {exc}") from None


def api_key_from(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The key of `--api-key`, else of $MOTIF_LITE_API_KEY, without surrounding blanks (the server compares it with
    the stripped token of each request); None without either. An empty one is an error: it served without a key,
    without a word (`--api-key "$KEY"` with KEY unset)."""
    for source, value in (("--api-key", flag), (f"${API_KEY_VARIABLE}", environ.get(API_KEY_VARIABLE))):
        if value is None:
            continue
        if not value.strip():
            raise MotifLiteError(
                f"{source} is empty (an unset shell variable?): give it a key, or leave it out (unset "
                f"{API_KEY_VARIABLE}) to serve without one"
            )
        # A client sends the key in a header: the SDK and browsers refuse any other character there, and curl's
        # UTF-8 bytes would never match it (the server reads a header as Latin-1).
        if not all(" " <= char <= "~" for char in value.strip()):
            raise MotifLiteError(
                f"{source} has a character other than printable ASCII (letters, digits, punctuation, spaces), which "
                "no client can send in its Authorization header: give a key such as the output of "
                "`openssl rand -hex 32`"
            )
        return value.strip()
    return None


def data_folder_problem(data: str, error: Exception) -> str:
    """Why `--data` cannot be opened, in words: a file where the folder (or a folder above it) should be is named
    as such, not as the OS's "File exists" / "Not a directory"."""
    folder = user_path(data)
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        where = f"--data {data} is" if existing == folder else f"--data {data}: {existing} is"
        return (
            f"{where} a file, not a folder; give --data a folder for the job database and the videos (it is "
            "created if missing)"
        )
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error  # not "[Errno 30] ...: path"
    return f"cannot use the data folder {data}: {reason}; give --data a folder you can write to"


def _serve(
    args: argparse.Namespace,
    sock,
    store,
    api_key: str | None,
    loras: list[tuple[Path, float]],
    stops: ServerStops,
    handed: list[GGUFFilesRead | None] | None = None,
):
    """Answer on the port at once (/health: `loading`), load the model meanwhile, then run jobs until stopped.
    `handed`: a one-item list of the GGUF files `check_gguf_files` read (or None), which the load pops
    instead of reading the file again: the list is its only holder, so the header is freed once the model loaded."""
    from motif_lite.server.app import MiB, ServerConfig
    from motif_lite.server.runner import VideoServer, served_model_name

    config = ServerConfig(  # what the flags decide; the loaded model decides the rest (_load_served_pipeline)
        model_name=served_model_name(args.model, args.gguf),
        api_key=api_key,
        max_queue=args.max_queue,
        max_upload_bytes=int(args.max_upload_mb * MiB),
        max_video_upload_bytes=int(args.max_video_upload_mb * MiB),
        max_video=args.max_video,
        cors_origins=args.cors_origins,
        lora_dir=args.lora_dir,
        crf=args.crf,
    )
    server = VideoServer(store, config)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(store.counts().items())) or "no jobs"
    sock.listen(128)  # from here on a connection waits for uvicorn instead of being refused
    _say_serving(args, sock, server, counts, config.model_name)
    stops.serving(server)
    # Taken out as the load starts: the header (the file memory-mapped) is not held for the server's life.
    handed = handed or [None]
    server.serve(sock, lambda: _load_served_pipeline(args, config, loras, handed.pop()))
    print("stopped", file=sys.stderr)


class ServerStops:
    """The handler of the stop signals for the whole of `serve`. Before the model has loaded a signal raises
    `Terminated` where the main thread is, as Ctrl-C interrupts the checks or the load; once the server exists it
    also stops its HTTP side (`VideoServer.stop`), and once the model has loaded that is all it does: the running job
    stops after its current step. Only the first signal raises: a second one asks for the same orderly stop, and
    must not interrupt the server's own stopping."""

    def __init__(self) -> None:
        self.server = None
        self.received: int | None = None  # the first stop signal

    def __call__(self, signum: int, _frame: object) -> None:
        first = self.received is None
        self.received = self.received or signum
        if self.server is not None:
            self.server.stop(signum)
        if first and (self.server is None or not self.server.loaded):
            raise Terminated(signum)

    def serving(self, server) -> None:
        """From now on a signal stops `server` too. A signal received before whose `Terminated` was lost (raised in
        a callback of the garbage collector, which prints and drops it) stops the server now, before it serves."""
        self.server = server
        if self.received is not None:
            server.stop(self.received)
            raise Terminated(self.received)


@contextlib.contextmanager
def _stop_in_order_on_signals() -> Iterator[ServerStops]:
    """SIGTERM (`systemctl stop`, `docker stop`), SIGHUP (the terminal closed), SIGUSR1 and SIGUSR2 (a scheduler's
    warning) stop the server as Ctrl-C does, the HTTP side first, then the running job after its current step, and
    the process exits with 0: with 130 (Ctrl-C's code) systemd marked every stop as a failure, and SIGHUP's default
    killed the server like a crash (`ServerStops` says how, before and after the load). A signal the server was
    started ignoring stays ignored (`nohup motif-lite serve`: the SSH session's end must not stop it). Only the main
    thread can set handlers: elsewhere nothing changes. The handlers before are put back after."""
    stops = ServerStops()
    before = {}
    with contextlib.suppress(ValueError):  # not the main thread
        for signum in not_ignored(STOP_SIGNALS):
            before[signum] = signal.signal(signum, stops)
    try:
        yield stops
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _load_served_pipeline(
    args: argparse.Namespace,
    config: ServerConfig,
    loras: list[tuple[Path, float]],
    header_read: GGUFFilesRead | None = None,
) -> tuple[MotifVideoPipeline, ServerConfig]:
    """Check, plan and load the model as run does, saying what it loads; -> (the pipeline, `config` with what the
    loaded model decides: the largest video a job may ask for, the planned size when there is a plan; whether it
    takes images; on the CPU without --max-video, which jobs are too long). `header_read`: the GGUF files read
    already (`check_gguf_files`): each file's header is read once, and the --gguf one not held once loaded."""
    from motif_lite.cli.common import print_notes
    from motif_lite.cli.kernel_cache import writable_kernel_cache
    from motif_lite.cli.prepare import (
        checked_lora_files,
        figures_on_out_of_memory,
        load_from_flags,
        loading_notes,
        plan_if_budget,
        planned_batch_guidance,
        preflight_flags,
        refuse_what_no_plan_fits,
        text_encoder_words,
    )
    from motif_lite.server.worker import operator_advice
    from motif_lite.settings import resolve_dtype

    max_video = config.max_video
    # A plan is made for the largest video a job may ask for, which is then the official size unless --max-video says.
    planned_video = max_video or (REQUEST_DEFAULTS.width, REQUEST_DEFAULTS.height, REQUEST_DEFAULTS.frames)

    def before_download(download: DownloadPlan) -> None:  # what no plan fits, said before gigabytes, as run says it
        refuse_what_no_plan_fits(
            args, lambda sources: largest_job(sources, planned_video), args.device, header_read=header_read
        )

    # Every check, and any download, before planning, as run: the --lora files before the download too.
    sources, device = preflight_flags(args, args.device, before_download, loras, header_read)
    largest = largest_job(sources, planned_video)
    print_notes(filter(None, [writable_kernel_cache(os.environ, args.kernels, device)]))  # before it compiles
    dtype = resolve_dtype(args.dtype, device).value  # as load_pipeline resolves it: --dtype, else the GPU's default
    print_notes(loading_notes(sources, device, args.device))  # as run prints them
    # The --lora files' adapters beside packed layers count, as in run's plan (a job's own LoRAs are checked against
    # this plan as it is submitted: `server.loras.check_loras_fit_plan`).
    lora_files = checked_lora_files(loras, sources)
    planned, plan = plan_if_budget(args, largest, sources, dtype, device, loras=lora_files)
    if plan is not None:
        max_video = planned_video
    # As run says it, with --vram's advice; a job may guide its steps (the official settings do).
    batch_guidance, note = planned_batch_guidance(args.batch_guidance, device, plan, guided=True)
    print_notes([note] if note else [])
    with_files = [f for f in (args.gguf, args.text_encoder_gguf) if f]
    print(f"loading {args.model}" + (f" with {' and '.join(map(str, with_files))}" if with_files else "") + " ...",
          file=sys.stderr)  # fmt: skip
    # Out of memory while it loads: the operator's figures, as a job's out-of-memory error gives them.
    with figures_on_out_of_memory(planned, plan, operator_advice):
        pipe = load_from_flags(args, sources, device, plan, lora_files, batch_guidance)
    _say_loaded(args, pipe, text_encoder_words(sources), max_video)
    pipe.warns_long_cpu_runs = False  # a long CPU job is refused (cpu_time_limit), or --max-video accepts it
    too_long = cpu_time_limit(pipe, dtype) if device.type == "cpu" and max_video is None else None
    if too_long is not None:  # said now, not first to the client whose job it refuses
        print(CPU_TIME_LIMIT_LINE, file=sys.stderr)
    if planned is not None:  # kept for the advice of a job out of memory: with the sources the pipeline keeps
        planned = dataclasses.replace(planned, sources=pipe.sources)
    loaded = dataclasses.replace(
        config, max_video=max_video, image_to_video=sources.takes_images, too_long=too_long,
        planned=planned, plan=plan,
    )  # fmt: skip
    return pipe, loaded


def largest_job(sources: ModelSources, video: tuple[int, int, int]) -> GenerationRequest:
    """The job a server's memory plan is made for: the largest `video` (width, height, frames) it takes, as
    image-to-video where the checkpoint takes images (`ModelSources.takes_images`, which also decides whether the
    server accepts them): the first frame's VAE encoding and the image tokens are then counted."""
    width, height, frames = video
    image = Path("first-frame.png") if sources.takes_images else None  # only its being there counts for the plan
    return GenerationRequest("-", width=width, height=height, frames=frames, image=image)


def _say_loaded(
    args: argparse.Namespace, pipe: MotifVideoPipeline, text_encoder: str | None, max_video: tuple[int, int, int] | None
) -> None:
    """What every job gets from the loaded model: its LoRAs, or those jobs may name, and the default settings."""
    from motif_lite.request import GenerationRequest
    from motif_lite.server.submission import within_max_video

    if pipe.loras is not None:
        print(f"loras: {pipe.loras.describe()}", file=sys.stderr)
    if args.lora_dir is not None:
        from motif_lite.server.loras import available_loras

        files = available_loras(args.lora_dir)
        print(f"LoRAs jobs may name, from {args.lora_dir}: {', '.join(files) or 'none yet'}", file=sys.stderr)
    print("\n".join(pipe.settings_for(GenerationRequest("-")).lines()), file=sys.stderr)  # what jobs get by default
    for note in within_max_video({}, max_video)[1]:  # the table's official size, where --max-video allows less
        print(f"jobs by default: {note}", file=sys.stderr)
    if text_encoder is not None:  # as run's summary says it: the table's row names the encoder's config only
        print(f"text encoder: {text_encoder}", file=sys.stderr)
    if args.crf is not None:  # an encoding option, not in the settings table: the jobs' default said here
        print(f"crf: {args.crf} for every job that gives no crf of its own", file=sys.stderr)


def _say_serving(args: argparse.Namespace, sock, server, counts: str, model_name: str) -> None:
    """The data folder with its jobs (and those a crash interrupted), and where the server listens (from now
    on, while the model loads)."""
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    if host in ("0.0.0.0", "::"):  # where it listens, but no address to open (browsers refuse it): name this machine
        here = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        url += (f", every address of this machine: open http://{socket.gethostname()}:{port}/ from another one, "
                f"http://{here}:{port}/ from this one")  # fmt: skip
    failed, requeued = server.recovered.failed, server.recovered.requeued
    # Only a crash leaves a job running (an orderly stop queues it again): "the last stop" misled after a SIGTERM.
    interrupted = f"; {len(failed)} failed as interrupted by a crash" if failed else ""
    if requeued:
        interrupted += f"; {len(requeued)} interrupted by a crash queued again, from their last saved state"
    print(f"data: {user_path(args.data).resolve()} ({counts}{interrupted})", file=sys.stderr)
    print(f"serving {model_name} on {url} (Ctrl-C to stop); the model loads first: until then /health says "
          "loading and the API answers 503", file=sys.stderr, flush=True)  # fmt: skip


# The banner's line for a server on the CPU without --max-video (`cpu_time_limit` refuses such jobs).
CPU_TIME_LIMIT_LINE = (
    f"jobs estimated over {LONG_CPU_RUN_SECONDS // 60} minutes on this CPU are refused (the CPU is meant for tests); "
    "restart with --max-video WxHxF to accept videos up to that size whatever they take"
)


# The small video a CPU server's refusal suggests; a job's size, frames or steps brought down to it shows which of
# them make the job too long.
SMALL_CPU_VIDEO = {"width": 256, "height": 256, "frames": 9, "steps": 2}


def cpu_time_limit(
    pipe: MotifVideoPipeline, dtype: torch.dtype
) -> Callable[[GenerationRequest, Settings, Sequence[LoRAFile]], TooLong | None]:
    """For a server on the CPU without --max-video: a job that `motif-lite run` would ask about (estimated over
    ~10 minutes at this CPU's matrix-multiply rate and fixed cost per transformer call, measured once now) is
    refused with the estimate and the fields that make it that long, so that a default-size request cannot hold
    the queue for months. The work of the LoRA adapters beside packed layers counts, as `run` counts it: the job's
    LoRA files (the limit's third argument), or where it names none the server's own (--lora)."""
    from motif_lite.memory_plan import packed_adapter_macs
    from motif_lite.run_estimates import long_cpu_run, run_flops, transformer_calls
    from motif_lite.runtime import cost
    from motif_lite.server.submission import TooLong

    throughput = cost.measure_matmul_flops(dtype)
    call_seconds = cost.measure_call_seconds(pipe.sources.transformer.value, dtype)
    configs = pipe.sources.configs
    own_loras = pipe.loras.files if pipe.loras is not None else []
    own_macs = packed_adapter_macs(pipe.sources, own_loras, dtype)

    def too_long(request: GenerationRequest, settings: Settings, loras: Sequence[LoRAFile] = ()) -> TooLong | None:
        macs = packed_adapter_macs(pipe.sources, loras, dtype) if loras else own_macs

        def estimate(asked: GenerationRequest) -> str | None:
            flops, calls = run_flops(asked, settings, configs, macs), transformer_calls(asked, settings)
            return long_cpu_run(asked, flops, dtype, throughput, calls=calls, call_seconds=call_seconds)

        said = estimate(request)
        if said is None:
            return None
        small = SMALL_CPU_VIDEO
        why = (
            f"{said}. This server runs on the CPU, which is meant for tests: ask for a small video (e.g. size "
            f"{small['width']}x{small['height']}, {small['frames']} frames, {small['steps']} steps), or restart the "
            "server with --max-video WxHxF to accept videos up to that size whatever they take"
        )
        return TooLong(why, fields_too_long(request, lambda asked: estimate(asked) is not None))

    return too_long


def fields_too_long(request: GenerationRequest, is_long: Callable[[GenerationRequest], bool]) -> tuple[str, ...]:
    """The fields of `request` (too long, as `is_long` says) that make it so: "width" for the size, "frames",
    "steps", each larger than the small video's (`SMALL_CPU_VIDEO`). Those that, each brought down to the small
    video's alone, make the job short enough; where none does alone, all of them (only together do they)."""
    small = SMALL_CPU_VIDEO
    lowered = {
        "width": dataclasses.replace(request, width=small["width"], height=small["height"]),
        "frames": dataclasses.replace(request, frames=small["frames"]),
        "steps": dataclasses.replace(request, steps=small["steps"]),
    }
    larger = {
        "width": request.width * request.height > small["width"] * small["height"],
        "frames": request.frames > small["frames"],
        "steps": request.steps > small["steps"],
    }
    over = [field for field, is_larger in larger.items() if is_larger]
    alone = tuple(field for field in over if not is_long(lowered[field]))
    return alone or tuple(over) or ("width",)  # the small video itself too long (a very slow CPU): its size first
