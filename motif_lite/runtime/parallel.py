"""Generation on several processes: guidance parallel and Ulysses sequence parallel on torch.distributed.

    torchrun --nproc-per-node 4 -m motif_lite run -p "..." -o out.mp4      # or: motif-lite run --gpus 4 ...

W = cfg x sp ranks (NCCL on CUDA, gloo on the CPU), started by torchrun or by runtime/launcher.py's `launch`
(torch's own elastic launcher, what `torchrun --standalone` runs). This module is the ranks' side: the layout,
joining the job, the process groups and what the pipeline composes from them:

- guidance parallel (cfg 2): ranks [0, sp) predict the conditional velocity while ranks [sp, 2 sp) predict the
  unconditional one; partners r and r + sp swap their predictions (one all-gather of the velocity) before the
  APG/CFG combination, which every rank then computes identically, so the latents stay the same everywhere;
- Ulysses sequence parallel (sp ranks per branch): after `embed` each rank keeps a contiguous 1/sp of the video
  tokens and their RoPE rows (global positions). Around each attention one all-to-all trades tokens for heads
  (every rank then attends over all tokens with H/sp heads), and one trades them back. The image + text context
  is replicated: a rank takes its heads' slice and all-gathers the context outputs (these collectives are in
  runtime/ulysses.py). The text cross-attention (video queries, text keys) needs no communication; the tokens are
  gathered again before `head`;
- the main rank (0) encodes the prompts and broadcasts noise and conditioning; the VAE decode is split into exact
  bands across all ranks and gathered on rank 0, which alone prints and writes.

Every rank loads the transformer and the VAE itself (memory-mapped files: one read from disk per machine); only
rank 0 loads the text encoder. See docs/parallel.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from motif_lite.choices import chosen_gpus_command
from motif_lite.errors import MotifLiteError
from motif_lite.launcher_variables import launcher_number
from motif_lite.model.transformer import Embedded
from motif_lite.runtime.ulysses import UlyssesAttention, gather_tokens
from motif_lite.vae.bands import crop_rows
from motif_lite.vae.tiling import VAEMode

T = TypeVar("T")
# Waits outside the denoising loop: the other ranks wait while rank 0 loads and runs the text encoder.
SETUP_TIMEOUT = timedelta(minutes=30)
DEFAULT_STEP_TIMEOUT_S = 600.0  # torch's own NCCL default; a rank waiting longer for its group gives up


class ParallelError(MotifLiteError):
    """A parallel layout that cannot work, or a failure reported by another rank."""


# The exit status of a rank that lost contact with another: not a user error of its own (2), so that the launcher
# counts it among the ranks stopped by another's failure, not among those that "failed too".
EXIT_LOST_CONTACT = 3


class LostContactError(ParallelError):
    """A collective that failed because another rank went away; `exit_status` is the command's exit status."""

    exit_status = EXIT_LOST_CONTACT


# ------------------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class ParallelLayout:
    """`cfg` rank groups (1, or 2 = one per guidance branch) of `sp` ranks sharing the video tokens."""

    cfg: int
    sp: int

    @property
    def world(self) -> int:
        return self.cfg * self.sp

    def describe(self) -> str:
        return f"cfg {self.cfg} x sp {self.sp} on {self.world} ranks"


def choose_layout(world: int, guided: bool, heads: int, sp: int | None = None) -> ParallelLayout:
    """The layout for `world` ranks: `sp` if given, else cfg 2 x sp world/2 with guidance on an even world,
    else sp = world. Raises ParallelError (before anything loads) for a layout that cannot work."""
    default_sp = world // 2 if guided and world % 2 == 0 else world
    given, sp = sp is not None, default_sp if sp is None else sp
    if world < sp:  # also a lone process given --sp: nothing to share the tokens with
        counts = f"{sp} or {2 * sp} (cfg 2 x sp {sp})" if guided else str(sp)
        raise ParallelError(
            f"--sp {sp} shares the video tokens among {sp} processes, but this run has {world}: run it on {counts} "
            "processes (--gpus N, or torchrun --nproc-per-node N)"
        )
    if sp < 1 or world % sp:
        working = [d for d in range(1, world + 1) if not world % d and not heads % d and world // d <= 1 + guided]
        choices = (
            " or ".join(f"--sp {d}" for d in working) or "no degree works (leave --sp out to see the counts that do)"
        )
        raise ParallelError(f"--sp {sp} does not divide the {world} ranks; on {world}: {choices}")
    cfg = world // sp
    if cfg > 2 or (cfg == 2 and not guided):
        # not guided: a cfg scale that changes nothing, a guidance window with no step in it, or a run resumed past
        # its window
        why = (
            "at most 2 (conditional, unconditional) can work"
            if guided
            else "guidance is off (a cfg scale that changes nothing) or has no step left"
        )
        raise ParallelError(f"--sp {sp} on {world} ranks makes {cfg} guidance groups, but {why}: use --sp {default_sp}")
    if heads % sp:
        raise _heads_do_not_split(world, sp, heads, guided, given)
    return ParallelLayout(cfg, sp)


def _heads_do_not_split(world: int, sp: int, heads: int, guided: bool, given: bool) -> ParallelError:
    """The error for a degree `sp` that does not divide the attention heads: the process counts that work when the
    user chose only a count (`given` False: `sp` came from it), else the degrees that do."""
    divisors = [d for d in range(1, heads + 1) if heads % d == 0]
    if not given:
        counts = sorted({*divisors, *(2 * d for d in divisors if guided)})
        if not guided:
            how = "without guidance all of them share the video tokens"
        elif world % 2:
            how = "an odd count runs both guidance branches on all of them, sharing the video tokens"
        else:
            how = f"with guidance each branch gets {sp} of them, which share its video tokens"
        return ParallelError(
            f"{world} processes cannot split this run: {how}, and {sp} does not divide the transformer's {heads} "
            f"attention heads; possible counts (--gpus N, torchrun's processes): {', '.join(map(str, counts))}"
        )
    degrees = ", ".join(map(str, divisors))
    hint = " (twice that many ranks with guidance)" if guided else ""
    return ParallelError(
        f"sequence-parallel degree {sp} does not divide the transformer's {heads} attention heads; "
        f"possible degrees: {degrees}{hint}"
    )


def split_tokens(n: int, parts: int) -> tuple[int, ...]:
    """Contiguous shares of n tokens, the first n % parts one token longer."""
    return tuple(n // parts + (i < n % parts) for i in range(parts))


# ------------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Session:
    """This process in a torchrun job: its global rank, the world size, and the device it computes on."""

    rank: int
    world: int
    device: torch.device


def start(device: str) -> Session:
    """Join the torchrun job of this process: cuda:LOCAL_RANK with NCCL, or the CPU with gloo."""
    rank, local = launcher_number("RANK"), launcher_number("LOCAL_RANK")
    world = launcher_number("WORLD_SIZE", smallest=1)
    check_device(device)
    cuda = device != "cpu" and torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ParallelError("--device cuda requested but CUDA is not available; use --device cpu")
    if device == "auto" and not cuda:  # as --gpus N refuses it: N CPU processes of a 720p run would take weeks
        raise ParallelError(
            f"torchrun started {world} processes, one per GPU, but this machine has no CUDA device: add --device cpu "
            f"to run the {world} processes on the CPU (slow, for testing)"
        )
    if cuda and local >= torch.cuda.device_count():
        raise ParallelError(f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()}")
    target = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(target)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=SETUP_TIMEOUT)  # torchrun's env:// rendezvous
    return Session(rank, world, target)


def check_same_dtype(dtype: torch.dtype) -> None:
    """Every rank of the job computes in the same dtype: without --dtype, ranks on GPUs of two generations would each
    take their own default (fp16 or fp32 before compute capability 8.0, else bf16) and exchange tensors of different
    types. Called by every rank with its own; raises the same error on all of them."""
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, str(dtype).removeprefix("torch."))
    if len(set(every)) > 1:
        ranks = ", ".join(f"rank {rank} {name}" for rank, name in enumerate(every))
        raise ParallelError(
            f"the GPUs of this run default to different compute dtypes ({ranks}; a GPU before compute capability 8.0 "
            "has no bf16 tensor cores and defaults to fp16 or fp32): give --dtype fp16 to run all of them in fp16 "
            "(or --dtype fp32), or choose GPUs of one generation with CUDA_VISIBLE_DEVICES"
        )


def check_every_rank_reads(inputs: Sequence[tuple[str, str]]) -> None:
    """Every rank can read the input files it reads itself (`inputs`: (flag, path) pairs). On several machines each
    rank reads them on its own machine: a rank that could not would fail alone while the others waited for it until
    a timeout. Called by every rank, after joining the job and before anything is read or loaded; raises the same
    error, naming each rank, its machine and the files it lacks, on all of them."""
    if not inputs:  # every rank runs the same command: none has any file to read, and none waits for an answer
        return
    lacking = [f"{flag} {path}" for flag, path in inputs if not _readable(path)]
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, (socket.gethostname(), lacking))
    refusals = [f"rank {rank} on {host} cannot read {', '.join(files)}" for rank, (host, files) in enumerate(every)
                if files]  # fmt: skip
    if refusals:
        raise ParallelError(
            f"{'; '.join(refusals)}: every process of a parallel run reads these files itself, so on several machines "
            "each must be at a path every machine can read (a shared folder, or a copy at the same path on each "
            'machine; docs/parallel.md, "Files on several machines")'
        )


def rank_0s(value: Any) -> Any:
    """Rank 0's `value` on every rank (each passes its own): a decision every rank must take alike, taken as rank 0
    takes it, where each rank's own look (at its machine's copy of a file) might differ."""
    values = [value]
    dist.broadcast_object_list(values, src=0)
    return values[0]


def _readable(path: str) -> bool:
    """Whether this process can read `path`: a file or folder, or, for a numbered PNG sequence (fox_%03d.png), one
    frame of it at least (the sequence's own checks name a frame missing in the middle)."""
    path = os.path.expanduser(path)  # as the files' readers take a leading ~
    folder, name = os.path.split(path)
    if "%" not in name:
        return os.path.exists(path) and os.access(path, os.R_OK)
    frame = re.compile(re.sub(r"%0?\d*d", r"\\d+", re.escape(name)))
    with contextlib.suppress(OSError):
        return any(frame.fullmatch(entry) for entry in os.listdir(folder or "."))
    return False


def check_device(device: str) -> None:
    """A `--device` a parallel run can use: each rank picks its own GPU, so only auto, cuda or cpu."""
    if device not in ("auto", "cuda", "cpu"):
        raise ParallelError(
            f"--device {device}: in a parallel run rank r uses cuda:LOCAL_RANK; use auto, cuda or cpu, and choose the "
            f"GPUs with CUDA_VISIBLE_DEVICES ({chosen_gpus_command(['2', '3'])} runs on GPUs 2 and 3)"
        )


# What gloo and NCCL say when the process at the other end of a collective is gone (killed, crashed, its machine
# lost) or the connection to it broke: "Connection reset by peer" / "Connection closed by peer" (gloo's TCP
# transport), "remote process exited" (NCCL).
_PEER_GONE = ("Connection reset by peer", "Connection closed by peer", "remote process exited")


def _from_torch_distributed(exc: BaseException) -> bool:
    """Whether `exc` was raised by a torch.distributed call: gloo raises a plain RuntimeError, so its type alone
    does not say; the innermost frame of its traceback is in torch/distributed."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "/torch/distributed/" in frames[-1].filename.replace("\\", "/")


def lost_peer(exc: BaseException) -> LostContactError | None:
    """The one-line error for a collective that failed because another rank went away, None for any other error
    (a RuntimeError with the same words from elsewhere, a download's, keeps its traceback). That rank's failure, if
    it stopped, is the cause (the launcher names it); this one's traceback would only point at the collective it was
    waiting in."""
    if not isinstance(exc, RuntimeError) or not any(words in str(exc) for words in _PEER_GONE):
        return None
    if not _from_torch_distributed(exc):
        return None
    first = str(exc).strip().splitlines()[0]
    return LostContactError(
        f"lost contact with another rank (it stopped, or the connection broke; its error, or the launcher's last "
        f"line, says why): {first}"
    )


# How long a rank that lost contact waits before it ends (the launcher stops it sooner, as soon as it sees the rank
# that failed end). A failed rank's process may take a moment to end after its connections closed; the launcher
# names the first rank it sees end, and where both ended within one look (its times are whole seconds, its list
# in rank order) it named the survivor: "rank 0 failed (exit code 2)" for rank 1's error.
LOST_PEER_WAIT_SECONDS = 10.0


def wait_for_the_lost_peer() -> None:
    """Give the rank whose failure broke the connection the time to end first, so the launcher names it. The
    launcher's stop (SIGTERM, or Ctrl-C passed on; `Terminated` and `KeyboardInterrupt` here) ends the wait: this
    rank is failing anyway, with its lost-contact line."""
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(LOST_PEER_WAIT_SECONDS)


def stop() -> None:
    """Leave the job (after success or failure)."""
    if dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------- groups


@dataclass
class Parallel:
    """The process groups of one layout and what the pipeline composes from them. `rank` is this process's
    index among the members: branch = rank // sp (0 conditional, 1 unconditional), sp_rank = rank % sp."""

    layout: ParallelLayout
    rank: int
    device: torch.device
    members: tuple[int, ...]  # global ranks; members[0] is the main rank
    group: Any  # all members (conditioning broadcast, decode gather)
    sp_group: Any  # the sp ranks of this branch
    pair_group: Any  # this rank and its partner in the other branch (cfg 2), else None

    @classmethod
    def create(
        cls,
        layout: ParallelLayout,
        device: torch.device,
        step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S,
        ranks: Sequence[int] | None = None,
    ) -> Parallel | None:
        """Create the groups on `ranks` (default: every rank). Every process of the job must call this; those
        outside `ranks` get None."""
        members = tuple(range(dist.get_world_size()) if ranks is None else ranks)
        if len(members) != layout.world:
            raise ParallelError(f"{layout.describe()} needs {layout.world} ranks, got {len(members)}")
        cfg, sp, timeout = layout.cfg, layout.sp, timedelta(seconds=step_timeout_s)
        group = dist.new_group(list(members), timeout=SETUP_TIMEOUT)
        sp_groups = [dist.new_group(list(members[b * sp : (b + 1) * sp]), timeout=timeout) for b in range(cfg)]
        pairs = [dist.new_group([members[j], members[sp + j]], timeout=timeout) for j in range(sp)] if cfg == 2 else []
        if dist.get_rank() not in members:
            return None
        rank = members.index(dist.get_rank())
        pair = pairs[rank % sp] if pairs else None
        return cls(layout, rank, torch.device(device), members, group, sp_groups[rank // sp], pair)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def branch(self) -> int:
        return self.rank // self.layout.sp

    @property
    def sp_rank(self) -> int:
        return self.rank % self.layout.sp

    def describe(self) -> str:
        return f"{self.layout.describe()} ({dist.get_backend(self.group)})"

    def share(self, produce: Callable[[], T]) -> T:
        """`produce()` on the main rank; every rank gets its result (on its own device). An error there is
        raised on every rank, with the main rank's message, instead of leaving the others waiting."""
        payload: list[Any] = [None]
        if self.is_main:
            try:
                result = produce()
            except Exception as exc:
                failure = _Failure(f"{type(exc).__name__}: {exc}" if not isinstance(exc, MotifLiteError) else str(exc))
                dist.broadcast_object_list([failure], src=self.members[0], group=self.group)
                raise
            payload = [_moved(result, torch.device("cpu"))]
        dist.broadcast_object_list(payload, src=self.members[0], group=self.group)
        if self.is_main:
            return result
        if isinstance(payload[0], _Failure):
            raise ParallelError(f"rank {self.members[0]} failed: {payload[0].message}")
        return _moved(payload[0], self.device)

    def every_ranks_fallbacks(self, mine: dict[str, str]) -> dict[str, str]:
        """{op: first reason} of the kernels that fell back on any rank (`kernel_fallbacks`): each rank's attention
        tries and gives up on its own. Every rank calls it; a reason from another rank than the main one names it."""
        every: list[Any] = [None] * len(self.members)
        dist.all_gather_object(every, mine, group=self.group)
        merged: dict[str, str] = {}
        for rank, fallbacks in enumerate(every):
            for op, reason in fallbacks.items():
                merged.setdefault(op, reason if rank == 0 else f"on rank {self.members[rank]}: {reason}")
        return merged

    def transformer(self, model: nn.Module) -> Callable[..., torch.Tensor]:
        """The transformer's forward for this rank: the model itself, or its sequence-parallel composition."""
        if self.layout.sp == 1:
            return model
        return SequenceParallel(model, self.sp_group, self.sp_rank, self.layout.sp)

    def velocity(self, predict: VelocityFn) -> VelocityFn:
        """The sampling loop's velocity callback: `predict` itself, or split across the two guidance groups."""
        return predict if self.layout.cfg == 1 else SplitGuidance(predict, self.pair_group, self.branch)

    def decode_frames(
        self,
        vae: nn.Module,
        z: torch.Tensor,
        mode: VAEMode,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Iterator[torch.Tensor]:
        """The VAE decode split into exact bands across the ranks: on the main rank, the pixel chunks
        [B, 3, n, H, W] per latent frame as `vae.decode_frames` gives them; the other ranks decode and send their
        bands and get nothing. Each rank decodes `mode.bands` bands (its memory plan's count; the ranks use the
        largest). When any rank's plan needs VAE tiles, rank 0 decodes alone, as its own plan says.
        `on_step(done, total)`, called on the main rank alone (with done = 0 first), counts the whole decode's
        steps, each a latent frame of one band: the main rank's bands as it decodes them, then every other rank's
        band as it arrives. One bar then shows the whole decode, not the main rank's share of it."""
        frames = z.shape[2]
        report = on_step if self.is_main else None
        agreed = torch.tensor([int(mode.tile is not None), mode.bands], device=self._comm_device)
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX, group=self.group)
        if agreed[0]:
            if report is not None:
                report(0, frames * mode.bands)  # `vae.decode_frames`' steps: every band through every latent frame
            decoded = vae.decode_frames(z, mode.tile, mode.frame_by_frame, mode.bands, report)
            return decoded if self.is_main else iter(())
        world = self.layout.world
        plan = vae.decoder.plan_bands(tuple(z.shape[3:]), min(world * int(agreed[1]), max(z.shape[3:])))
        steps = len(plan) * frames
        if report is not None:
            report(0, steps)
        mine = list(range(self.rank, len(plan), world))
        own = None if report is None else lambda done, _: report(done, steps)  # out of the whole decode's steps
        pixels = vae.decode_bands(z, [plan[k] for k in mine], mode.frame_by_frame, own)
        if not self.is_main:
            for band_pixels in pixels:
                dist.send(band_pixels.to(self._comm_device), self.members[0], group=self.group)
            return iter(())
        shape = list(pixels[0].shape)
        shape[plan[0].dim] = plan[-1].out_rows[1]
        video = torch.empty(shape, dtype=pixels[0].dtype)
        done = len(mine) * frames  # the main rank's own bands, decoded by now
        for k, band in enumerate(plan):
            place = crop_rows(video, (0, shape[band.dim]), band.out_rows, band.dim)
            if k % world == 0:
                place.copy_(pixels[mine.index(k)])
                continue
            received = torch.empty(place.shape, dtype=video.dtype, device=self._comm_device)
            dist.recv(received, self.members[k % world], group=self.group)
            place.copy_(received)
            done += frames
            if report is not None:
                report(done, steps)
        return iter(video.split([1] + [vae.config.temporal_factor] * (z.shape[2] - 1), dim=2))

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend(self.group) == "nccl" else torch.device("cpu")


@dataclass(frozen=True)
class _Failure:
    message: str


def _moved(obj: Any, device: torch.device) -> Any:
    """`obj` with every tensor in it (through tuples, lists, dicts and dataclasses) moved to `device`. A dataclass's
    fields that are not `__init__` arguments (caches, such as Conditioning's stacked prompts) start again empty."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_moved(x, device) for x in obj)
    if isinstance(obj, dict):
        return {k: _moved(v, device) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: _moved(getattr(obj, f.name), device) for f in dataclasses.fields(obj) if f.init}
        )
    return obj


# ------------------------------------------------------------------------------------ guidance parallel

VelocityFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


class SplitGuidance:
    """A velocity callback for two rank groups. `denoise` asks for the conditional prediction, then (on guided
    steps) the unconditional one: the first call predicts this group's branch and swaps it with the partner
    rank's (one all-gather), the second returns the partner's prediction of the same step."""

    def __init__(self, predict: VelocityFn, pair_group: Any, branch: int) -> None:
        self.predict, self.pair_group, self.branch = predict, pair_group, branch
        self._unconditional: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __call__(self, latents: torch.Tensor, timestep: torch.Tensor, conditional: bool) -> torch.Tensor:
        if not conditional:
            if self._unconditional is None or self._unconditional[0] is not latents:
                raise RuntimeError("SplitGuidance: the unconditional prediction is asked before the conditional one")
            prediction = self._unconditional[2]
            self._unconditional = None
            return prediction
        mine = self.predict(latents, timestep, self.branch == 0).contiguous()
        both = [torch.empty_like(mine) for _ in range(2)]
        dist.all_gather(both, mine, group=self.pair_group)  # [conditional, unconditional]
        self._unconditional = (latents, timestep, both[1])
        return both[0]


# ------------------------------------------------------------------------------------ sequence parallel


class SequenceParallel:
    """The transformer's forward (same arguments and result) with this rank holding 1/sp of the video tokens:
    `embed` -> shard -> `run_encoder` -> `run_decoder` -> gather -> `head`, with Ulysses attention."""

    def __init__(self, model: nn.Module, group: Any, rank: int, sp: int) -> None:
        self.model, self.group, self.rank, self.sp = model, group, rank, sp

    def __call__(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        s = self.model.embed(latents, timestep, text_embeds, text_mask, image_embeds)
        counts = split_tokens(s.x.shape[1], self.sp)
        if min(counts) == 0:
            raise ParallelError(f"{s.x.shape[1]} video tokens are fewer than the {self.sp} sequence-parallel ranks")
        start = sum(counts[: self.rank])
        mine = slice(start, start + counts[self.rank])
        local = Embedded(
            x=s.x[:, mine].clone(),  # [B, n_r, C]; the clone lets the whole [B, N, C] go
            context=s.context,
            ctx=self._sharded(s.ctx, mine, counts, copies=1),  # [video (sharded); image + text (replicated)]
            decoder_ctx=self._sharded(s.decoder_ctx, mine, counts, copies=2),  # [decoder; encoder], both sharded
            grid=s.grid,
        )
        del s
        encoded = self.model.run_encoder(local.x, local.context, local.ctx)
        # Whole last block: Ulysses attention exchanges equal query and key shards between the ranks.
        decoded = self.model.run_decoder(local.x, encoded, local.decoder_ctx, whole_last_block=True)
        return self.model.head(gather_tokens(decoded, counts, self.group), local)

    def _sharded(self, ctx: Any, mine: slice, counts: tuple[int, ...], copies: int) -> Any:
        attention = UlyssesAttention(ctx.attention, self.group, self.rank, counts, copies)
        return dataclasses.replace(ctx, cos=ctx.cos[mine], sin=ctx.sin[mine], attention=attention)
