"""Block streaming: keep a model's repeated layers in (pinned) CPU memory and copy each to the compute device just
before it runs, releasing it right after.

    handle = apply_block_streaming(transformer, StreamingConfig("cuda", resident_blocks=4))
    ...                                   # forwards as usual; the model code is unchanged
    handle.remove()                       # back to the plain model, weights where they were

Mechanism (the same for the transformer's blocks and any `nn.ModuleList`, e.g. T5Gemma2's layers):
- every streamed tensor (parameter or buffer, float or packed GGUF bytes) gets a CPU "home" copy, pinned when the
  device is CUDA so host->device copies can run asynchronously;
- a forward pre-hook swaps each tensor's `.data` to a device copy, a forward hook swaps it back to the home copy,
  so the device copy is freed as soon as the layer returns (the Parameter objects never change);
- on CUDA the pre-hook of layer i also starts copying layer i+1 on a side stream; the compute stream waits on an
  event recorded after that copy, so layer i+1's math never reads a half-copied weight. On CPU the same steps run
  synchronously, with no stream;
- the hooks are excluded from `torch.compile` (`torch.compiler.disable`): a block compiled in place
  (`block.compile()`, runtime/compile.py) compiles its `__call__`, hooks included, and Dynamo must not trace the
  `.data` swaps; they run eagerly around the compiled forward.
Nothing here is called from the model's math or the sampling loop: the hooks are the only entry points.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from motif_lite.errors import ConfigError


@dataclass(frozen=True)
class StreamingConfig:
    """device: where layers compute. resident_blocks: the first k layers stay on the device (no copies).
    prefetch: copy layer i+1 while layer i computes (CUDA side stream). pin_memory: page-locked CPU homes (CUDA)."""

    device: torch.device | str
    resident_blocks: int = 0
    prefetch: bool = True
    pin_memory: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.resident_blocks, int) or self.resident_blocks < 0:
            raise ConfigError(f"resident_blocks={self.resident_blocks!r} must be an integer >= 0")


@dataclass
class StreamingStats:
    """Counters for tests and benchmarks: layer loads, how many came from a prefetch, releases."""

    loads: int = 0
    prefetch_hits: int = 0
    releases: int = 0


def _tensor_slots(module: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer tensor of `module` (each once), the objects whose `.data` we swap."""
    seen: dict[int, torch.Tensor] = {}
    for t in [*module.parameters(), *module.buffers()]:
        seen.setdefault(id(t), t)
    return list(seen.values())


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


def _home_copy(t: torch.Tensor, pin: bool) -> torch.Tensor:
    home = t.data if t.device.type == "cpu" else t.data.to("cpu")
    return home.pin_memory() if pin and not home.is_pinned() else home


class LayerStreamer:
    """Streams an ordered sequence of layers (see the module docstring). Use through the `apply_*` functions."""

    def __init__(self, layers: Sequence[nn.Module], config: StreamingConfig) -> None:
        self.device = torch.device(config.device)
        self.config = config
        self.stats = StreamingStats()
        cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if cuda and config.prefetch else None
        self._pending: _Prefetch | None = None
        self._layers: list[_Layer | None] = []  # None = resident on the device
        self._resident: list[tuple[list[torch.Tensor], list[torch.device]]] = []
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        for index, layer in enumerate(layers):
            if index < config.resident_blocks:
                self._add_resident(index, layer)
            else:
                self._add_streamed(index, layer, pin=config.pin_memory and cuda)

    def _add_resident(self, index: int, layer: nn.Module) -> None:
        slots = _tensor_slots(layer)
        self._resident.append((slots, [t.device for t in slots]))
        _move_slots(slots, self.device)
        self._layers.append(None)
        if index == self.config.resident_blocks - 1 and self.config.prefetch:
            # The last resident layer starts the copy of the first streamed one.
            self._hooks.append(layer.register_forward_pre_hook(self._make_prefetch_hook(index + 1)))

    def _add_streamed(self, index: int, layer: nn.Module, pin: bool) -> None:
        slots = _tensor_slots(layer)
        devices = [t.device for t in slots]
        homes = [_home_copy(t, pin) for t in slots]
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
        return [torch.empty_like(h, device=self.device).copy_(h, non_blocking=h.is_pinned()) for h in homes]

    def _load(self, index: int) -> None:
        layer = self._layers[index]
        pending = self._take_pending()
        if pending is not None and pending.index == index:
            copies = pending.copies
            self.stats.prefetch_hits += 1
        else:
            copies = self._copy_to_device(layer.homes)
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
        homes = self._layers[index].homes
        if self._stream is None:
            self._pending = _Prefetch(index, self._copy_to_device(homes), None)
            return
        compute = torch.cuda.current_stream(self.device)
        # Destinations are allocated on the compute stream (so the allocator frees them in its order); the side
        # stream first waits for the work already queued there, which may still read memory being reused.
        copies = [torch.empty_like(h, device=self.device) for h in homes]
        self._stream.wait_stream(compute)
        with torch.cuda.stream(self._stream):
            for copy, home in zip(copies, homes, strict=True):
                copy.copy_(home, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._pending = _Prefetch(index, copies, event)

    def _release(self, index: int) -> None:
        layer = self._layers[index]
        for t, home in zip(layer.slots, layer.homes, strict=True):
            t.data = home
        self.stats.releases += 1

    def remove(self) -> None:
        """Remove the hooks and put every tensor back on the device it had before streaming."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._take_pending()
        for layer in self._layers:
            if layer is not None:
                for t, home, device in zip(layer.slots, layer.homes, layer.original_devices, strict=True):
                    t.data = home if device.type == "cpu" and not home.is_pinned() else home.to(device)
        for slots, devices in self._resident:
            _move_slots(slots, devices)
        self._layers.clear()
        self._resident.clear()


def _move_slots(slots: list[torch.Tensor], devices: torch.device | list[torch.device]) -> None:
    targets = devices if isinstance(devices, list) else [devices] * len(slots)
    for t, device in zip(slots, targets, strict=True):
        t.data = t.data.to(device)


@dataclass
class StreamingHandle:
    """What the `apply_*` functions return: `stats`, and `remove()` to restore the plain model."""

    streamers: list[LayerStreamer]
    others: list[torch.Tensor] = field(default_factory=list)  # non-layer tensors moved to the device once
    other_devices: list[torch.device] = field(default_factory=list)

    @property
    def stats(self) -> StreamingStats:
        """Counters summed over all streamed lists."""
        total = StreamingStats()
        for streamer in self.streamers:
            total.loads += streamer.stats.loads
            total.prefetch_hits += streamer.stats.prefetch_hits
            total.releases += streamer.stats.releases
        return total

    def remove(self) -> None:
        for streamer in self.streamers:
            streamer.remove()
        _move_slots(self.others, self.other_devices)
        self.streamers, self.others, self.other_devices = [], [], []


def _stream_with_rest(
    root: nn.Module, sequences: list[Sequence[nn.Module]], config: StreamingConfig
) -> StreamingHandle:
    """Stream each sequence of layers, and move every other tensor of `root` to the device once."""
    in_layers = {id(t) for layers in sequences for layer in layers for t in _tensor_slots(layer)}
    others = [t for t in _tensor_slots(root) if id(t) not in in_layers]
    devices = [t.device for t in others]
    _move_slots(others, torch.device(config.device))
    return StreamingHandle([LayerStreamer(layers, config) for layers in sequences], others, devices)


def apply_block_streaming(model: nn.Module, config: StreamingConfig) -> StreamingHandle:
    """Stream a `MotifVideoTransformer`'s blocks in execution order (12 dual, then 16 encoder single + 8 decoder).

    The first `config.resident_blocks` of that sequence stay on the device, the embedders and the output head go
    there once. Apply after loading; `apply_ff_chunking` may come before or after.
    """
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    if config.resident_blocks > len(blocks):
        raise ConfigError(f"resident_blocks={config.resident_blocks} but the model has {len(blocks)} blocks")
    return _stream_with_rest(model, [blocks], config)


def apply_layer_streaming(layers: nn.ModuleList, config: StreamingConfig) -> StreamingHandle:
    """Stream any list of layers that run in list order (only the layers' own tensors are touched)."""
    return StreamingHandle([LayerStreamer(list(layers), config)])


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
    to the device once. DEVICE/CPU simply move the whole module.
    """
    if placement is TextEncoderPlacement.DEVICE:
        model.to(config.device)
        return None
    if placement is TextEncoderPlacement.CPU:
        model.to("cpu")
        return None
    # Each list (text layers, vision layers) runs front to back; embeddings and norms go to the device once.
    return _stream_with_rest(model, [list(layers) for layers in text_encoder_layer_lists(model)], config)
