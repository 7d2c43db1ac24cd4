"""The lab's generator (a ``sfumato lab train-base`` checkpoint) as a
:class:`~sfumato.generators.base.Generator`.

Latents are the lab encoder's, normalised by the statistics the checkpoint carries; the training step is
the lab's rectified flow (``x_t = (1 - t) x0 + t eps``, velocity target ``eps - x0``, times from the
model's own ``time_sampling``), so :func:`~sfumato.generators.base.denoising_loss` equals
:func:`sfumato.lab.models.generator.flow_matching_loss` without caption dropout, draw for draw.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from sfumato.generators.base import Condition
from sfumato.lab.models.generator import LatentUNet, sample_time

TextFn = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


class LabGenerator:
    """``model`` (a :class:`LatentUNet`), its image ``encoder`` and ``text`` (captions -> (emb, mask))."""

    def __init__(
        self,
        model: LatentUNet,
        encoder: torch.nn.Module,
        text: TextFn,
        name: str = "lab",
        resolution: int = 64,
    ) -> None:
        self.model, self.encoder, self.text = model, encoder, text
        self.denoiser = model
        self.name = name
        self.resolution = resolution
        # The UNet halves the latents once per level after the first: sides must divide by that too.
        levels = len(model.config.channel_mults)
        self.multiple = int(getattr(encoder, "multiple", 8)) * 2 ** (levels - 1)
        # Attacks differentiate with respect to the image only; surrogate training unfreezes the denoiser.
        for m in (model, encoder):
            m.requires_grad_(False)
            m.eval()

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> LabGenerator:
        """From a ``train-base`` folder (``checkpoint.pt`` and ``spec.json``) or its checkpoint file:
        the EMA weights, the spec's encoder and the lab's text encoder."""
        from sfumato.lab.models.autoencoders import load_lab_encoder
        from sfumato.lab.models.text_encoder import TextEncoder
        from sfumato.lab.models.training import CHECKPOINT, load_generator

        path = Path(path)
        ckpt = path / CHECKPOINT if path.is_dir() else path
        model, _, _, meta = load_generator(ckpt, device)
        spec = meta.get("spec")
        if spec is None and (ckpt.parent / "spec.json").is_file():
            spec = json.loads((ckpt.parent / "spec.json").read_text())
        if spec is None:
            raise ValueError(f"{ckpt} names no encoder (no spec in its metadata, no spec.json beside it)")
        encoder = load_lab_encoder(spec["encoder"]).to(device)
        return cls(
            model, encoder, TextEncoder().encode_tokens, f"lab:{ckpt.parent.name}", int(spec.get("size", 64))
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.normalize(self.encoder(x).float())

    def condition(self, prompts: Sequence[str]) -> Condition:
        emb, mask = self.text(list(prompts))
        device = self.model.latent_mean.device
        return {"emb": emb.to(device), "mask": mask.to(device)}

    def draw(self, z: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t = sample_time(z.shape[0], gen, self.model.config.time_sampling)
        noise = torch.randn(z.shape, generator=gen)
        return t.to(z.device), noise.to(z.device, z.dtype)

    def noisy(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        tt = t[:, None, None, None].to(z.dtype)
        return (1 - tt) * z + tt * noise

    def predict(self, zt: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.model(zt, t, cond["emb"], cond["mask"])

    def target(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise - z
