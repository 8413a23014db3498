"""What the transformer sees besides the noisy latents, and the encodings a pipeline keeps between videos:
the last texts encoded and the last first frame of image-to-video."""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from motif_lite.request import GenerationRequest
from motif_lite.runtime.streaming import StreamingConfig, TextEncoderPlacement, place_text_encoder
from motif_lite.vae.posterior import DiagonalGaussian

if TYPE_CHECKING:  # transformers takes seconds to import: plans and dry runs never need it
    from motif_lite.encoders.text import PromptTruncation, TextEncoder
    from motif_lite.vae import WanVAE


TEXTS_KEPT = 4  # encoded texts a pipeline keeps (`KeptEncodings`, `MotifVideoPipeline.encoded_texts`)
# (the file's SHA-256, which of its frames, width, height): another file, the same one edited, or another frame of
# it (an animated image's first frame for `image`, its last for `extend`) misses. `first_frame_key` makes it.
FirstFrameKey = tuple[str | None, str, int, int]


@dataclass
class Conditioning:
    """Everything the transformer sees besides the noisy latents (see docs/sampling.md)."""

    text: tuple[torch.Tensor, torch.Tensor | None]
    negative: tuple[torch.Tensor, torch.Tensor | None] | None
    latents: torch.Tensor  # [B, 16, F, h, w]: the first-frame latent at frame 0 for I2V, else zeros
    mask: torch.Tensor  # [B, 1, F, h, w]: 1 at frame 0 for I2V, else zeros
    image_embeds: torch.Tensor | None
    image_size: tuple[int, int] | None = None  # I2V: the input image's (width, height) before it was resized
    # branches -> (the encodings they were built from, (text, text mask, image embeds) stacked for them): the same
    # every step, so built once. The same mask tensor every step also lets the transformer and the attention
    # backends read it on the host once per run instead of once per forward (a wait for the GPU each time).
    _stacked: dict[tuple[bool, ...], tuple] = field(default_factory=dict, init=False, repr=False, compare=False)

    def inputs(self, x: torch.Tensor, branches: tuple[bool, ...]) -> tuple[torch.Tensor, ...]:
        """The transformer's inputs (hidden, text, text mask, image embeds) for the noisy latents `x` once per
        branch (True: the prompt, False: the negative prompt), stacked along the batch in that order."""
        hidden = torch.cat([x, self.latents, self.mask], dim=1)  # [B, 16 + 16 + 1, F, h, w]
        n = len(branches)
        sources, stacked = self._stacked.get(branches, (None, None))
        if sources is None or any(now is not then for now, then in zip(self._sources(), sources, strict=True)):
            text, text_mask = pad_prompts([self.text if branch else self.negative for branch in branches])
            stacked = (text, text_mask, None if self.image_embeds is None else self.image_embeds.repeat(n, 1, 1))
            self._stacked[branches] = (self._sources(), stacked)
        return hidden.repeat(n, 1, 1, 1, 1), *stacked

    def _sources(self) -> tuple:
        """What `inputs` stacks (compared by identity: a field given a new value is stacked again)."""
        return self.text, self.negative, self.image_embeds


def pad_prompts(prompts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stack encoded prompts ([1, T_i, D] and masks [1, T_i] or None) along the batch, right-padding each to the
    longest with zeros that its mask hides; exactly what the transformer computes for each prompt alone."""
    if len(prompts) == 1:
        return prompts[0]
    longest = max(embeds.shape[1] for embeds, _ in prompts)
    rows, masks = [], []
    for embeds, mask in prompts:
        pad = longest - embeds.shape[1]
        valid = torch.ones(embeds.shape[:2], dtype=torch.bool, device=embeds.device) if mask is None else mask.bool()
        rows.append(torch.nn.functional.pad(embeds, (0, 0, 0, pad)))
        masks.append(torch.nn.functional.pad(valid, (0, pad), value=False))
    return torch.cat(rows), torch.cat(masks)


@dataclass(frozen=True)
class KeptText:
    """A text's encoding as `KeptEncodings` keeps it: host copies of the embeddings and mask, and how the text encoder
    cut the text (None: read whole), said again for each video that uses it."""

    embeds: torch.Tensor  # [1, T, D_text]
    mask: torch.Tensor  # [1, T] bool
    truncation: PromptTruncation | None


@dataclass
class KeptImage:
    """An image-to-video first frame's encodings: what `KeptEncodings` keeps for the next video of the same image."""

    key: FirstFrameKey
    size: tuple[int, int]  # the image's (width, height), upright, before it was resized
    embeds: torch.Tensor  # the image encoder's embeddings of the first frame
    posterior: DiagonalGaussian  # the VAE's posterior of the first frame


class KeptEncodings:
    """The encodings a pipeline keeps between videos, as host copies; the same bits as encoding again.

    Texts: the last `TEXTS_KEPT` encoded, the least recently used dropped first. The videos of a batch (-b N), a
    server's repeated prompts and the negative prompt most runs share are encoded once, and the text encoder is not
    even placed on the device when every text of a request is known.

    The first frame of image-to-video (`KeptImage`), for the next video of the same image (a batch's): the image is
    not read again, the text encoder not placed on the device for its SigLIP embeddings, the VAE not run; each video
    still draws its own posterior sample, from its own seed.

    Each belongs to the encoders that made it: another one (swapped by hand) finds nothing. They are held by weak
    reference, not `id()`: a new encoder may get a freed one's address; and what is kept must not keep an encoder the
    user let go of in memory.
    """

    def __init__(self) -> None:
        self.texts: OrderedDict[str, KeptText] = OrderedDict()  # the oldest first
        self._texts_encoded_by: weakref.ref | None = None
        self._image: KeptImage | None = None
        self._image_encoded_by: tuple[weakref.ref, weakref.ref] | None = None  # the text encoder and the VAE

    def __reduce__(self) -> tuple:
        """copy.deepcopy and pickle: an empty `KeptEncodings`. What is kept is a cache of encodings by the encoders
        that made them, known by weak reference (which pickle cannot write); the copy's encoders are other objects
        (copies), so nothing kept here could be told to be theirs, and the copy encodes again: the same bits."""
        return (KeptEncodings, ())

    def has_text(self, text: str, encoder: TextEncoder) -> bool:
        """Whether `encoder`'s encoding of `text` is kept."""
        return text in self._texts_of(encoder)

    def text(self, text: str, encoder: TextEncoder) -> KeptText | None:
        """`encoder`'s kept encoding of `text`, now the most recently used; None if not kept."""
        texts = self._texts_of(encoder)
        if text in texts:
            texts.move_to_end(text)
        return texts.get(text)

    def keep_text(
        self,
        text: str,
        encoder: TextEncoder,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        truncation: PromptTruncation | None,
    ) -> None:
        """Keep host copies of `encoder`'s encoding of `text`, and how it cut the text (None: not cut), dropping the
        least recently used beyond `TEXTS_KEPT`."""
        texts = self._texts_of(encoder)
        texts[text] = KeptText(embeds.cpu(), mask.cpu(), truncation)
        while len(texts) > TEXTS_KEPT:
            texts.popitem(last=False)

    def image(self, key: FirstFrameKey, text_encoder: TextEncoder, vae: WanVAE) -> KeptImage | None:
        """The kept encodings of a first frame, if they are this image's at this size, by these encoders."""
        if self._image is None or self._image.key != key:
            return None
        made_by = self._image_encoded_by
        return self._image if made_by[0]() is text_encoder and made_by[1]() is vae else None

    def keep_image(self, image: KeptImage, text_encoder: TextEncoder, vae: WanVAE) -> None:
        """Keep host copies of a first frame's encodings in place of the last one's; not one whose file could not
        be read for its hash (`image_sha256`), which no later image could be told apart from."""
        if image.key[0] is None:
            return
        self._image = dataclasses.replace(image, embeds=image.embeds.cpu(), posterior=image.posterior.to("cpu"))
        self._image_encoded_by = weakref.ref(text_encoder), weakref.ref(vae)

    def clear(self) -> None:
        """Forget every kept encoding."""
        self.texts.clear()
        self._image = None

    def _texts_of(self, encoder: TextEncoder) -> OrderedDict[str, KeptText]:
        """The texts kept for `encoder`, emptied when they are another encoder's."""
        if self._texts_encoded_by is None or self._texts_encoded_by() is not encoder:
            self.texts.clear()
            self._texts_encoded_by = weakref.ref(encoder)
        return self.texts


def first_frame_key(checksum: str | None, request: GenerationRequest) -> FirstFrameKey:
    """What a first frame's encodings depend on: the bytes of the file it comes from, by their checksum
    (`ResolvedRequest.first_frame_sha256`), which frame of that file it is, and the video's size (`KeptImage`).
    The frame matters: one animated GIF, WebP or PNG given as `image` starts from its first frame and as `extend`
    goes on from its last, and both hash the same bytes."""
    frame = "image" if request.extend is None else "last frame of the clip"
    return checksum, frame, request.width, request.height


@contextlib.contextmanager
def text_encoder_placed(
    text_encoder: TextEncoder, placement: TextEncoderPlacement, device: torch.device
) -> Iterator[None]:
    # The 4B-parameter encoder is needed for a few seconds per video: it gives the device back before the
    # transformer runs, whole or streamed (its embedding table alone is 1.3 GB in bf16).
    if placement is TextEncoderPlacement.CPU:
        yield
        return
    # Streamed through two staging buffers: it runs once per video, so page-locking its 4-8 GB would cost more
    # time and host memory than the asynchronous copies save. Placed inside the `try`: a placement that runs out
    # of memory part way leaves the part already moved on the device, which `offload` takes back too.
    handle = None
    try:
        handle = place_text_encoder(text_encoder.model, placement, StreamingConfig(device, staging=True))
        yield
    finally:
        if handle is not None:
            handle.remove()
        text_encoder.offload()
