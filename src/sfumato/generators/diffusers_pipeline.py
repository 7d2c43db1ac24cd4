"""A diffusers pipeline folder of the Stable Diffusion 1.x / 2.x / SDXL class as a
:class:`~sfumato.generators.base.Generator`.

The folder holds ``unet``, ``vae``, ``text_encoder``, ``tokenizer`` and ``scheduler`` (plus
``text_encoder_2`` and ``tokenizer_2`` for SDXL), as ``save_pretrained`` writes them; only these parts
are loaded (no pipeline class, no safety checker). The training step is the DDPM one the fine-tuning
scripts use: ``z_t = sqrt(a_t) z + sqrt(1 - a_t) eps`` at an integer step drawn uniformly, and the
scheduler's ``prediction_type`` picks the target (``epsilon``: the noise; ``v_prediction``:
``sqrt(a_t) eps - sqrt(1 - a_t) z``). Latents are the VAE posterior's mean times its ``scaling_factor``:
the mean is what a fine-tuner's sampled latents scatter around, without the sampling noise in the
attack's gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from sfumato.generators.base import Condition

PREDICTION_TYPES = ("epsilon", "v_prediction")


def is_pipeline_folder(path: str | Path) -> bool:
    """A folder with the parts :meth:`DiffusersGenerator.load` reads."""
    p = Path(path)
    return all((p / part).is_dir() for part in ("unet", "vae", "text_encoder", "tokenizer"))


class DiffusersGenerator:
    """A Stable Diffusion-class model from its parts; ``unet`` is the denoiser fine-tuning trains."""

    def __init__(
        self,
        unet: torch.nn.Module,
        vae: torch.nn.Module,
        text_encoders: Sequence[torch.nn.Module],
        tokenizers: Sequence[object],
        alphas_cumprod: torch.Tensor,
        prediction_type: str = "epsilon",
        name: str = "diffusers",
    ) -> None:
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction type must be one of {PREDICTION_TYPES}, not {prediction_type!r}")
        if len(text_encoders) != len(tokenizers) or not 1 <= len(text_encoders) <= 2:
            raise ValueError("one or two text encoders, one tokenizer each")
        self.unet, self.vae = unet, vae
        self.text_encoders, self.tokenizers = list(text_encoders), list(tokenizers)
        self.denoiser = unet
        self.alphas_cumprod = alphas_cumprod.float()
        self.prediction_type = prediction_type
        self.name = name
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        # The UNet halves the latents once per block after the first: sides must divide by that too.
        self.multiple = self.factor * 2 ** (len(unet.config.block_out_channels) - 1)
        self.resolution = int(unet.config.sample_size) * self.factor
        self.scaling = float(vae.config.scaling_factor)
        self.xl = getattr(unet.config, "addition_embed_type", None) == "text_time"
        # Attacks differentiate with respect to the image only; surrogate training unfreezes the UNet.
        for m in (unet, vae, *self.text_encoders):
            m.requires_grad_(False)
            m.eval()

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> DiffusersGenerator:
        """From a pipeline folder, offline (nothing is downloaded)."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        p = Path(path)
        if not is_pipeline_folder(p):
            raise ValueError(f"{p} is not a diffusers pipeline folder (unet, vae, text_encoder, tokenizer)")
        kw = {"torch_dtype": dtype, "local_files_only": True}
        unet = UNet2DConditionModel.from_pretrained(p / "unet", **kw).to(device)
        vae = AutoencoderKL.from_pretrained(p / "vae", **kw).to(device)
        encoders = [CLIPTextModel.from_pretrained(p / "text_encoder", **kw).to(device)]
        tokenizers = [AutoTokenizer.from_pretrained(p / "tokenizer", local_files_only=True)]
        if (p / "text_encoder_2").is_dir():
            encoders.append(
                CLIPTextModelWithProjection.from_pretrained(p / "text_encoder_2", **kw).to(device)
            )
            tokenizers.append(AutoTokenizer.from_pretrained(p / "tokenizer_2", local_files_only=True))
        config = DDPMScheduler.load_config(p / "scheduler") if (p / "scheduler").is_dir() else {}
        scheduler = DDPMScheduler.from_config(config)
        prediction = str(scheduler.config.prediction_type)
        return cls(
            unet, vae, encoders, tokenizers, scheduler.alphas_cumprod, prediction, f"diffusers:{p.name}"
        )

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        vae_dtype = next(self.vae.parameters()).dtype
        posterior = self.vae.encode((2 * x - 1).to(vae_dtype)).latent_dist
        return posterior.mean.float() * self.scaling

    @torch.no_grad()
    def condition(self, prompts: Sequence[str]) -> Condition:
        hidden, pooled = [], None
        for tok, enc in zip(self.tokenizers, self.text_encoders, strict=True):
            ids = tok(  # type: ignore[operator]
                list(prompts),
                padding="max_length",
                max_length=tok.model_max_length,  # type: ignore[attr-defined]
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)
            out = enc(ids, output_hidden_states=self.xl)
            if self.xl:  # SDXL conditions on the penultimate layer of both encoders, pooled from the second
                hidden.append(out.hidden_states[-2])
                pooled = getattr(out, "text_embeds", None)
            else:
                hidden.append(out.last_hidden_state)
        cond = {"hidden": torch.cat(hidden, dim=-1).float()}
        if self.xl:
            if pooled is None:
                raise ValueError(
                    "an SDXL UNet needs a second text encoder with a projection (text_encoder_2)"
                )
            cond["pooled"] = pooled.float()
        return cond

    def draw(self, z: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.randint(0, self.alphas_cumprod.shape[0], (z.shape[0],), generator=gen)
        noise = torch.randn(z.shape, generator=gen)
        return t.to(z.device), noise.to(z.device, z.dtype)

    def _coefficients(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.alphas_cumprod.to(z.device)[t.long()][:, None, None, None].to(z.dtype)
        return a.sqrt(), (1 - a).sqrt()

    def noisy(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        s, n = self._coefficients(z, t)
        return s * z + n * noise

    def predict(self, zt: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        dtype = next(self.unet.parameters()).dtype
        extra = {}
        if self.xl:
            h, w = zt.shape[-2] * self.factor, zt.shape[-1] * self.factor
            ids = torch.tensor([h, w, 0, 0, h, w], dtype=dtype, device=zt.device).expand(zt.shape[0], -1)
            extra["added_cond_kwargs"] = {"text_embeds": cond["pooled"].to(dtype), "time_ids": ids}
        out = self.unet(zt.to(dtype), t, encoder_hidden_states=cond["hidden"].to(dtype), **extra).sample
        return out.float()

    def target(self, z: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        s, n = self._coefficients(z, t)
        return s * noise - n * z
