"""`ProgressBars`: a tqdm bar per stage of `generate`, for its `on_progress` (the command line's bars and a
notebook's). Imports nothing heavy, so that `motif-lite --help` stays quick."""

from __future__ import annotations

from typing import TextIO


class ProgressBars:
    """A progress bar per stage for `generate(request, on_progress=ProgressBars())`: encode (inputs), denoise
    (steps) and decode (latent frames). tqdm.auto's bars: widgets in a Jupyter notebook (Colab, Kaggle), text in a
    terminal. One instance serves many calls: each stage that starts gets a new bar (the next video's encode, or
    the one after a stop part way through denoising). `file`: where text bars go (default stderr)."""

    UNITS = {"encode": "input", "denoise": "step", "decode": "latent frame"}

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file
        self.stage: str | None = None
        self.bar = None  # the current stage's bar

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            from tqdm.auto import tqdm  # a notebook's widgets where ipywidgets is installed

            self.close()
            self.stage = stage  # `initial`: a resumed run's bar starts at the steps already done
            unit = self.UNITS.get(stage, "it")
            self.bar = tqdm(total=total, initial=done, desc=f"{stage:>7}", unit=unit, file=self.file)
        self.bar.update(done - self.bar.n)
        if stage == "decode" and done == total:  # the last stage is done: nothing more will close it
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage, self.bar = None, None
