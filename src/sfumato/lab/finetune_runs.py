"""One experiment run: fine-tune a copy of the base generator, draw images at each checkpoint, keep them.

Both experiments (poisoning and mimicry) measure a fine-tuned generator the same way: fine-tune with a
constant learning rate after a short warm-up, so that evaluating after each of several lengths is one run
observed several times; draw ``samples`` images per prompt at the default guidance after every length and
at every guidance after the last; save each set as ``samples-L<steps>-w<guidance>.pt``; delete the
fine-tuned weights once sampled (hundreds of MB each, and the images are what the figures come from).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from sfumato.lab.judging.evaluation import TextFn, generate
from sfumato.lab.models.training import TrainConfig, finetune, load_generator
from sfumato.lab.storage import atomic_torch_save


class FinetuneSettings(Protocol):
    """What an experiment's config says about its runs (both configs carry these fields)."""

    @property
    def finetune_steps(self) -> Sequence[int]: ...  # increasing; the images are drawn after each
    @property
    def finetune_batch(self) -> int: ...
    @property
    def finetune_lr(self) -> float: ...
    @property
    def guidance(self) -> Sequence[float]: ...  # the first after every length, all after the last
    @property
    def samples(self) -> int: ...  # images per prompt and setting
    @property
    def sampler_steps(self) -> int: ...


def finetune_and_sample(
    folder: Path,
    base_checkpoint: Path,
    latents: torch.Tensor,
    captions: Sequence[str],
    text: TextFn,
    decoder: torch.nn.Module,
    prompts: Sequence[str],
    settings: FinetuneSettings,
    *,
    seed: int,
    meta: dict[str, Any],
    bars: bool = False,
    on_length: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Run it in ``folder`` (resumes an interrupted fine-tune); returns the seconds each part took."""
    finetune_steps = list(settings.finetune_steps)
    guidance = list(settings.guidance)
    ckpt_dir = folder / "finetune"
    timings: dict[str, float] = {}
    for i, steps in enumerate(finetune_steps):
        t0 = time.perf_counter()
        cfg = TrainConfig(
            steps=steps,
            batch=settings.finetune_batch,
            lr=settings.finetune_lr,
            warmup=20,
            min_lr_frac=1.0,
            ema_decay=0.99,
            seed=seed,
            checkpoint_every=100,
            log_every=25,
            save_optimizer_at_end=steps != finetune_steps[-1],
        )
        finetune(base_checkpoint, latents, list(captions), text, cfg, ckpt_dir, progress=bars, meta=meta)
        timings[f"finetune_to_{steps}"] = round(time.perf_counter() - t0, 1)
        model, _, _, _ = load_generator(ckpt_dir / "checkpoint.pt")
        final = i == len(finetune_steps) - 1
        for g in guidance if final else guidance[:1]:
            t0 = time.perf_counter()
            drawn = generate(
                model,
                decoder,
                text,
                list(prompts),
                settings.samples,
                guidance=g,
                seed=seed,
                steps=settings.sampler_steps,
            )
            atomic_torch_save({p: drawn[p] for p in prompts}, folder / f"samples-L{steps}-w{g:g}.pt")
            timings[f"sample_L{steps}_w{g:g}"] = round(time.perf_counter() - t0, 1)
        if on_length is not None:
            on_length(steps)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return timings
