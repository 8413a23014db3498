"""Block streaming: keep a model's repeated layers in (pinned) CPU memory and copy each to the compute device just
before it runs, releasing it right after.

    handle = apply_block_streaming(transformer, StreamingConfig("cuda", resident_blocks=4))
    ...                                   # forwards as usual; the model code is unchanged
    handle.remove()                       # back to the plain model, weights where they were

Mechanism (the same for the transformer's blocks and any `nn.ModuleList`, e.g. T5Gemma2's layers):
- every streamed tensor (parameter or buffer, float or packed GGUF bytes) gets a CPU "home" copy, pinned when the
  device is CUDA so host->device copies can run asynchronously; or, with `staging`, the tensors stay where they
  are (pageable, memory-mapped where the loader mapped the file) and each layer is copied through one of two
  page-locked staging buffers sized to the largest layer (host memory: the weights once, plus two layers);
- a forward pre-hook swaps each tensor's `.data` to a device copy, a forward hook swaps it back to the home copy,
  so the device copy is freed as soon as the layer returns (the Parameter objects never change);
- on CUDA the pre-hook of layer i also starts copying layer i+1 on a side stream; the compute stream waits on an
  event recorded after that copy, so layer i+1's math never reads a half-copied weight. On CPU the same steps run
  synchronously, with no stream;
- the hooks are excluded from `torch.compile` (`torch.compiler.disable`): a block compiled in place
  (`block.compile()`, runtime/compile.py) compiles its `__call__`, hooks included, and Dynamo must not trace the
  `.data` swaps; they run eagerly around the compiled forward.
Nothing here is called from the model's math or the sampling loop: the hooks are the only entry points, and
`release_loaded` once sampling ends (a forward stopped inside a layer skips its forward hook).
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from motif_lite.errors import ConfigError
from motif_lite.io.wsl import is_wsl


@dataclass(frozen=True)
class StreamingConfig:
    """device: where layers compute. resident_blocks: the first k layers stay on the device (no copies).
    prefetch: copy layer i+1 while layer i computes (CUDA side stream). pin_memory: page-locked CPU homes (CUDA).
    staging: leave the homes as loaded and copy through two page-locked buffers of the largest layer's size
    instead (PyTorch rounds every pinned allocation up to a power of two, so pinned homes cost up to twice the
    weights; staging costs one host memcpy per layer, done while the device computes)."""

    device: torch.device | str
    resident_blocks: int = 0
    prefetch: bool = True
    pin_memory: bool = True
    staging: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.resident_blocks, int) or self.resident_blocks < 0:
            raise ConfigError(f"resident_blocks={self.resident_blocks!r} must be an integer >= 0")


@dataclass
class StreamingStats:
    """Counters for tests and benchmarks: layer loads, how many came from a prefetch, releases."""

    loads: int = 0
    prefetch_hits: int = 0
    releases: int = 0

    def __add__(self, other: StreamingStats) -> StreamingStats:
        """Each counter summed (every field: a new counter cannot be left out of a handle's total)."""
        return StreamingStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _tensor_slots(module: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer tensor of `module` (each once), the objects whose `.data` we swap."""
    seen: dict[int, torch.Tensor] = {}
    for t in [*module.parameters(), *module.buffers()]:
        seen.setdefault(id(t), t)
    return list(seen.values())


@dataclass
class _Placed:
    """Tensors moved to the device once (resident layers, a model's tensors outside its layers), and where they
    were before, for `restore`: their devices, and with `keep_originals` the tensors themselves."""

    slots: list[torch.Tensor]  # the live Parameter/buffer objects
    original_devices: list[torch.device]
    originals: list[torch.Tensor] | None = None  # their `.data` before `on`, put back as they are (no copy)

    @classmethod
    def on(cls, device: torch.device, slots: list[torch.Tensor], keep_originals: bool = False) -> _Placed:
        """Move `slots` to `device` (their `.data`), remembering where each was; with `keep_originals` holding on
        to the tensors they had too, so that `restore` puts those back instead of copying the device's back."""
        placed = cls(slots, [t.device for t in slots], [t.data for t in slots] if keep_originals else None)
        for t in slots:
            t.data = t.data.to(device)
        return placed

    def restore(self) -> None:
        """Each tensor back on the device it had before `on`: the tensor it had, when kept."""
        if self.originals is not None:
            for t, original in zip(self.slots, self.originals, strict=True):
                t.data = original
            return
        for t, device in zip(self.slots, self.original_devices, strict=True):
            t.data = t.data.to(device)


@dataclass
class _Layer:
    slots: list[torch.Tensor]  # the live Parameter/buffer objects
    homes: list[torch.Tensor]  # their CPU storage while the layer is not running
    original_devices: list[torch.device]


@dataclass
class _Prefetch:
    index: int
    copies: list[torch.Tensor]
    event: torch.cuda.Event | None


PINNING_FAILED = (
    "motif-lite: page-locking host memory for streamed weights failed ({error}); they are copied from ordinary "
    "memory instead, which is slower and no longer overlaps the computation"
)
# For page-locked homes: staging needs only two page-locked buffers of one block each.
STAGE_INSTEAD = (
    "; a --ram budget below this plan's page-locked homes makes the planner stage the blocks through two small "
    "buffers instead (--dry-run shows the plan)"
)
WSL_PINNING = "; under WSL2, CUDA limits page-locked memory (NVIDIA's CUDA on WSL guide)"


def pinning_failed(error: RuntimeError, advice: str = "") -> None:
    """Warn that page-locking failed (CUDA on WSL2 limits it; a machine short of memory refuses it) and the run goes
    on with ordinary memory. Once per run: the same text from the same line, which Python's filters show once."""
    wsl = WSL_PINNING if is_wsl() else ""
    text = PINNING_FAILED.format(error=(str(error).strip() or type(error).__name__).splitlines()[0])
    warnings.warn(text + advice + wsl, RuntimeWarning, stacklevel=2)


def pinned(tensor: torch.Tensor) -> torch.Tensor | None:
    """A page-locked copy of the CPU `tensor`, or None (after a warning) where page-locking fails."""
    try:
        return tensor.pin_memory()
    except RuntimeError as exc:  # cudaHostAlloc refused: out of memory, or WSL2's limit on pinned memory
        pinning_failed(exc, STAGE_INSTEAD)
        return None


def empty_pinned(nbytes: int) -> torch.Tensor | None:
    """A page-locked byte buffer, or None (after a warning) where page-locking fails."""
    try:
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    except RuntimeError as exc:
        pinning_failed(exc)
        return None


STAGING_ALIGNMENT = 256  # bytes: every tensor in a staging buffer starts aligned for any dtype view


def layer_nbytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes a layer's tensors take in a staging buffer (each aligned)."""
    return sum(-(-t.numel() * t.element_size() // STAGING_ALIGNMENT) * STAGING_ALIGNMENT for t in tensors)


class StagingBuffers:
    """Two byte buffers of one layer's size (page-locked on CUDA): a layer is copied into one (a host memcpy) and
    from there to the device (an asynchronous copy) while the other one's copy may still be in flight."""

    def __init__(self, buffers: list[torch.Tensor]) -> None:
        self.buffers = buffers
        self.events: list[torch.cuda.Event | None] = [None, None]
        self.next = 0

    def stage(self, homes: list[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
        """Copy `homes` into the next buffer (after its previous device copy has finished); returns views of
        them there and the buffer's index, for `copied`."""
        index, self.next = self.next, 1 - self.next
        if self.events[index] is not None:
            self.events[index].synchronize()
        views, offset = [], 0
        for home in homes:
            nbytes = home.numel() * home.element_size()
            view = self.buffers[index][offset : offset + nbytes].view(home.dtype).view(home.shape)
            views.append(view.copy_(home))
            offset += layer_nbytes([home])
        return views, index

    def copied(self, index: int, event: torch.cuda.Event | None) -> None:
        """The device copy out of buffer `index` is queued; `event` marks its end (None: already done)."""
        self.events[index] = event


class LayerStreamer:
    """Streams an ordered sequence of layers (see the module docstring); only the layers' own tensors are touched.
    Used through `apply_block_streaming` and `place_text_encoder`, which also place the rest of the model."""

    def __init__(self, layers: Sequence[nn.Module], config: StreamingConfig) -> None:
        self.device = torch.device(config.device)
        self.config = config
        self.stats = StreamingStats()
        cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if cuda and config.prefetch else None
        self._pending: _Prefetch | None = None
        self._loaded: set[int] = set()  # streamed layers whose device copy is in place (the one running)
        self._layers: list[_Layer | None] = []  # None = resident on the device
        self._resident: list[_Placed] = []
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        # Cleared by the first failure to page-lock: the rest stay in ordinary memory, without another try.
        self._pin = config.pin_memory and cuda and not config.staging
        for index, layer in enumerate(layers):
            if index < config.resident_blocks:
                self._add_resident(index, layer)
            else:
                self._add_streamed(index, layer)
        streamed = [layer.homes for layer in self._layers if layer is not None]
        self.staging = None
        if config.staging and streamed:
            self.staging = self._staging_buffers(max(layer_nbytes(homes) for homes in streamed), pin=cuda)

    def _staging_buffers(self, nbytes: int, pin: bool) -> StagingBuffers | None:
        """Two staging buffers of `nbytes`, page-locked on CUDA; None where page-locking fails: then each layer is
        copied straight from its home, which is ordinary memory too (one host memcpy fewer)."""
        if not pin:
            return StagingBuffers([torch.empty(nbytes, dtype=torch.uint8) for _ in range(2)])
        buffers = [empty_pinned(nbytes) for _ in range(2)]
        return None if any(buffer is None for buffer in buffers) else StagingBuffers(buffers)

    def _home_copy(self, t: torch.Tensor) -> torch.Tensor:
        home = t.data if t.device.type == "cpu" else t.data.to("cpu")
        if not self._pin or home.is_pinned():
            return home
        locked = pinned(home)
        if locked is None:
            self._pin = False
            return home
        return locked

    def _add_resident(self, index: int, layer: nn.Module) -> None:
        self._resident.append(_Placed.on(self.device, _tensor_slots(layer)))
        self._layers.append(None)
        if index == self.config.resident_blocks - 1 and self.config.prefetch:
            # The last resident layer starts the copy of the first streamed one.
            self._hooks.append(layer.register_forward_pre_hook(self._make_prefetch_hook(index + 1)))

    def _add_streamed(self, index: int, layer: nn.Module) -> None:
        slots = _tensor_slots(layer)
        devices = [t.device for t in slots]
        homes = [self._home_copy(t) for t in slots]
        for t, home in zip(slots, homes, strict=True):
            t.data = home
        self._layers.append(_Layer(slots, homes, devices))
        self._hooks.append(layer.register_forward_pre_hook(self._make_pre_hook(index)))
        self._hooks.append(layer.register_forward_hook(self._make_post_hook(index)))

    def _make_prefetch_hook(self, index: int):
        @torch.compiler.disable
        def prefetch_hook(module: nn.Module, args: tuple) -> None:
            self._prefetch(index)

        return prefetch_hook

    def _make_pre_hook(self, index: int):
        @torch.compiler.disable
        def pre_hook(module: nn.Module, args: tuple) -> None:
            self._load(index)
            if self.config.prefetch:
                self._prefetch(index + 1)

        return pre_hook

    def _make_post_hook(self, index: int):
        @torch.compiler.disable
        def post_hook(module: nn.Module, args: tuple, output: object) -> None:
            self._release(index)

        return post_hook

    def _copy_to_device(self, homes: list[torch.Tensor]) -> list[torch.Tensor]:
        # Always a fresh tensor (even for device == cpu), so the CPU tests exercise the real swap.
        sources, index = self.staging.stage(homes) if self.staging is not None else (homes, None)
        copies = [torch.empty_like(h, device=self.device).copy_(h, non_blocking=h.is_pinned()) for h in sources]
        if index is not None:
            self.staging.copied(index, self._event_on(None))
        return copies

    def _event_on(self, stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
        """An event recorded now on `stream` (None: the current stream); None off CUDA (copies are done)."""
        if self.device.type != "cuda":
            return None
        event = torch.cuda.Event()
        event.record(stream if stream is not None else torch.cuda.current_stream(self.device))
        return event

    def _load(self, index: int) -> None:
        layer = self._layers[index]
        pending = self._take_pending()
        if pending is not None and pending.index == index:
            copies = pending.copies
            self.stats.prefetch_hits += 1
        else:
            copies = self._copy_to_device(layer.homes)
        self._loaded.add(index)  # first: a Ctrl-C between two swaps still leaves the layer marked for release
        for t, copy in zip(layer.slots, copies, strict=True):
            t.data = copy
        self.stats.loads += 1

    def _take_pending(self) -> _Prefetch | None:
        pending, self._pending = self._pending, None
        if pending is not None and pending.event is not None:
            # Also when the prefetch is dropped: its memory returns to the compute stream's pool, which must not
            # reuse it before the side stream's copy into it has finished.
            torch.cuda.current_stream(self.device).wait_event(pending.event)
        return pending

    def _prefetch(self, index: int) -> None:
        if index >= len(self._layers) or self._layers[index] is None:
            return  # past the end (no wrap-around: nothing may stay on the device after a forward) or resident
        if self._pending is not None and self._pending.index == index:
            return  # copied by a forward that stopped before using it (the step cache's reused steps)
        self._take_pending()  # another layer's, left the same way: dropped once the compute stream waited for it
        homes = self._layers[index].homes
        if self._stream is None:
            self._pending = _Prefetch(index, self._copy_to_device(homes), None)
            return
        compute = torch.cuda.current_stream(self.device)
        # Destinations are allocated on the compute stream (so the allocator frees them in its order); the side
        # stream first waits for the work already queued there, which may still read memory being reused.
        copies = [torch.empty_like(h, device=self.device) for h in homes]
        sources, staged = self.staging.stage(homes) if self.staging is not None else (homes, None)
        self._stream.wait_stream(compute)
        with torch.cuda.stream(self._stream):
            for copy, source in zip(copies, sources, strict=True):
                copy.copy_(source, non_blocking=True)
            event = self._event_on(self._stream)
        if staged is not None:
            self.staging.copied(staged, event)
        self._pending = _Prefetch(index, copies, event)

    def _release(self, index: int) -> None:
        layer = self._layers[index]
        for t, home in zip(layer.slots, layer.homes, strict=True):
            t.data = home
        self._loaded.discard(index)
        self.stats.releases += 1

    def release_loaded(self) -> None:
        """Put back in its home every layer a forward left on the device and drop a prefetched copy: what a
        forward stopped inside a layer (out of memory, Ctrl-C) leaves there, where the next forward would hold it
        beside its own copies. Nothing to do after a forward that finished."""
        self._take_pending()
        for index in sorted(self._loaded):
            self._release(index)

    def remove(self) -> None:
        """Remove the hooks and put every tensor back on the device it had before streaming."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._take_pending()
        for layer in self._layers:
            if layer is not None:
                for t, home, device in zip(layer.slots, layer.homes, layer.original_devices, strict=True):
                    t.data = home.to(device)  # the home itself for a CPU tensor (a page-locked one stays so)
        for placed in self._resident:
            placed.restore()
        self._layers.clear()
        self._resident.clear()
        self.staging = None


@dataclass
class StreamingHandle:
    """What `apply_block_streaming` and `place_text_encoder` (STREAMED) return: `stats`, and `remove()` to restore
    the plain model."""

    streamers: list[LayerStreamer]
    others: _Placed = field(default_factory=lambda: _Placed([], []))  # non-layer tensors moved to the device once

    @property
    def stats(self) -> StreamingStats:
        """Counters summed over all streamed lists."""
        return sum((streamer.stats for streamer in self.streamers), StreamingStats())

    def release_loaded(self) -> None:
        """`LayerStreamer.release_loaded` of every streamed list."""
        for streamer in self.streamers:
            streamer.release_loaded()

    def remove(self) -> None:
        for streamer in self.streamers:
            streamer.remove()
        self.others.restore()
        self.streamers, self.others = [], _Placed([], [])


def _stream_with_rest(
    root: nn.Module, sequences: list[Sequence[nn.Module]], config: StreamingConfig, keep_originals: bool = False
) -> StreamingHandle:
    """Stream each sequence of layers, and move every other tensor of `root` to the device once (`_Placed.on`
    with `keep_originals`)."""
    in_layers = {id(t) for layers in sequences for layer in layers for t in _tensor_slots(layer)}
    rest = [t for t in _tensor_slots(root) if id(t) not in in_layers]
    others = _Placed.on(torch.device(config.device), rest, keep_originals)
    return StreamingHandle([LayerStreamer(layers, config) for layers in sequences], others)


def apply_block_streaming(model: nn.Module, config: StreamingConfig) -> StreamingHandle:
    """Stream a `MotifVideoTransformer`'s blocks in execution order (12 dual, then 16 encoder single + 8 decoder).

    The first `config.resident_blocks` of that sequence stay on the device, the embedders and the output head go
    there once. Apply after loading; `apply_token_chunking` may come before or after.
    """
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    if config.resident_blocks > len(blocks):
        raise ConfigError(f"resident_blocks={config.resident_blocks} but the model has {len(blocks)} blocks")
    return _stream_with_rest(model, [blocks], config)


class TextEncoderPlacement(enum.Enum):
    """Where the T5Gemma2 encoder runs: all on the device, layers streamed to it, or entirely on the CPU."""

    DEVICE = "device"
    STREAMED = "streamed"
    CPU = "cpu"


def text_encoder_layer_lists(model: nn.Module) -> list[nn.ModuleList]:
    """The repeated layers of a transformers T5Gemma2Encoder: the text layers and the SigLIP encoder layers."""
    lists = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith("layers") and len(module) > 1:
            lists.append(module)
    if not lists:
        raise ConfigError(f"no layer list found in {type(model).__name__} to stream")
    return lists


def place_text_encoder(
    model: nn.Module, placement: TextEncoderPlacement, config: StreamingConfig
) -> StreamingHandle | None:
    """Place a text encoder `nn.Module` (e.g. `TextEncoder.model`). Returns a handle for STREAMED, else None.

    STREAMED streams every layer list (text and vision layers, each from the start), the embeddings and norms go
    to the device once; `remove` puts back the very tensors they had, not a copy of the device's: the encoder
    keeps its weights as loaded anyway (`TextEncoder.offload`), so holding them costs no memory, and copying the
    1.3 GB embedding table back would only make a host copy that `offload` throws away at once, at the moment the
    run switches to sampling. DEVICE/CPU simply move the whole module.
    """
    if placement is TextEncoderPlacement.DEVICE:
        model.to(config.device)
        return None
    if placement is TextEncoderPlacement.CPU:
        model.to("cpu")
        return None
    layer_lists = [list(layers) for layers in text_encoder_layer_lists(model)]
    return _stream_with_rest(model, layer_lists, config, keep_originals=True)
