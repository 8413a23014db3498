"""One transformer forward in a process of its own, as a later run would make it (for tests/test_cuda.py):

    python tests/repeat_forward.py MODEL_DIR INPUTS.pt OUT.pt DEVICE

Loads the transformer in bf16 on DEVICE with the run's defaults there (`--kernels auto`, `--attention-backend
auto`, so on a GPU the attention trial and its remembered choices run as in `motif-lite run`), runs the saved
inputs and saves the output and the attention backend's description.
"""

from __future__ import annotations

import sys

import torch

from motif_lite import load_transformer
from motif_lite.runtime.attention import apply_attention_backend, attention_backend
from motif_lite.runtime.kernels import apply_kernels, use_triton


def main(model_dir: str, inputs_path: str, out_path: str, device: str) -> None:
    model = load_transformer(model_dir, torch.bfloat16, device)
    apply_kernels(model, "auto")
    backend = attention_backend("auto", device, use_triton("auto"))
    apply_attention_backend(model, backend)
    x = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in torch.load(inputs_path).items()}
    with torch.no_grad():
        out = model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    torch.save({"out": out.cpu(), "attention": backend.describe()}, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
