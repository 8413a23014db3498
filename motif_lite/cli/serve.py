"""`motif-lite serve`: the OpenAI Videos API, a persistent job queue and a web page over one loaded model.

    motif-lite serve --gguf Q4_K_M --data ~/motif-videos

FastAPI and uvicorn come with the `server` extra and are imported only when the command runs (see
docs/server.md). This module holds the command's flags and its handler, from the first check to the server's end;
the flags' values are checked by `serve_flag_values`, the model is loaded by `serve_loading` and the stop signals
are handled by `serve_stops`.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.cli.flag_numbers import crf_value, positive_int
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
from motif_lite.cli.serve_flag_values import (
    API_KEY_VARIABLE,
    MAX_VIDEO_UPLOAD_MB,
    MIN_VIDEO_UPLOAD_MB,
    api_key_from,
    check_server_crf,
    cors_origin,
    data_folder_problem,
    host_name,
    lora_folder,
    parse_max_video,
    port_number,
    positive_mib,
    video_upload_mib,
)
from motif_lite.cli.serve_stops import ServerStops, stop_in_order_on_signals
from motif_lite.errors import MotifLiteError
from motif_lite.paths import path_arg, user_path
from motif_lite.shell_syntax import variable_from_home_file
from motif_lite.stopping import Terminated

if TYPE_CHECKING:
    from motif_lite.checkpoint import GGUFFilesRead


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
    (`stop_in_order_on_signals`): `docker stop` during the checks before the port is bound, which take seconds
    (torch is imported), killed it, and a container's first process ignored it until the SIGKILL."""
    with stop_in_order_on_signals() as stops:
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
    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import MiB, ServerConfig
    from motif_lite.server.runner import VideoServer, served_model_name

    config = ServerConfig(  # what the flags decide; the loaded model decides the rest (load_served_pipeline)
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
    server.serve(sock, lambda: load_served_pipeline(args, config, loras, handed.pop()))
    print("stopped", file=sys.stderr)


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
