"""Tiny random generators built in the test itself (no downloads): a diffusers Stable Diffusion-class
pipeline folder and a lab generator, both far too small to draw anything, large enough to have gradients."""

from __future__ import annotations

from pathlib import Path

import torch

from sfumato.encoders.base import ImageEncoder
from sfumato.generators.lab import LabGenerator
from sfumato.lab.models.generator import GeneratorConfig, LatentUNet


def _byte_characters() -> list[str]:
    """GPT-2's byte-to-unicode table (CLIP's too): the 256 characters byte-level BPE spells bytes with."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def _clip_vocab() -> dict[str, int]:
    """A CLIP byte-level BPE vocabulary with one token per byte character (and word end), no merges."""
    chars = _byte_characters()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def tiny_pipeline(folder: Path, prediction_type: str = "epsilon", seed: int = 0, xl: bool = False) -> Path:
    """Write a tiny SD-class pipeline folder: UNet, VAE (factor 2), CLIP text encoder, tokenizer and
    scheduler; ``xl``: the SDXL layout (a second text encoder with a projection, size-conditioned UNet)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32 if xl else 16,
        attention_head_dim=4,
        norm_num_groups=4,
        **(
            {"addition_embed_type": "text_time", "addition_time_embed_dim": 4,
             "projection_class_embeddings_input_dim": 8 + 6 * 4}
            if xl
            else {}
        ),
    )  # fmt: skip
    # Random weights predict a near-constant noise; a louder output layer lets the latents matter.
    torch.nn.init.normal_(unet.conv_out.weight, std=0.3)
    unet.save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=16,
        scaling_factor=1.0,  # random latents are small already; SD's 0.18215 would leave nothing to move
    ).save_pretrained(folder / "vae")
    tok = CLIPTokenizer(vocab=_clip_vocab(), merges=[], model_max_length=16)
    config = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=16,
        projection_dim=8,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    tok.save_pretrained(folder / "tokenizer")
    CLIPTextModel(config).save_pretrained(folder / "text_encoder")
    if xl:
        tok.save_pretrained(folder / "tokenizer_2")
        CLIPTextModelWithProjection(config).save_pretrained(folder / "text_encoder_2")
    DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type).save_pretrained(
        folder / "scheduler"
    )
    return folder


class TinyEncoder(ImageEncoder):
    """A random strided-conv encoder: pixels (B, 3, H, W) -> (B, 4, H/4, W/4)."""

    name = "tiny-test"
    multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
            torch.nn.SiLU(),
            torch.nn.Conv2d(8, 4, 3, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2 * x - 1)


def tiny_text(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic random token embeddings (8 tokens of 16 dims) hashed from each caption's words."""
    emb = torch.zeros(len(captions), 8, 16)
    mask = torch.zeros(len(captions), 8, dtype=torch.bool)
    for i, c in enumerate(captions):
        for j, word in enumerate(c.split()[:8]):
            g = torch.Generator().manual_seed(sum(ord(ch) * (k + 1) for k, ch in enumerate(word)))
            emb[i, j] = torch.randn(16, generator=g)
            mask[i, j] = True
    return emb, mask


def tiny_lab(seed: int = 0) -> LabGenerator:
    """A tiny lab generator over a random 4-channel encoder, with random (non-zero) output layers."""
    torch.manual_seed(seed)
    config = GeneratorConfig(
        latent_channels=4,
        latent_size=8,
        text_dim=16,
        width=16,
        channel_mults=(1,),
        attn_resolutions=(8,),
        heads=2,
        ff_mult=1,
    )
    model = LatentUNet(config)
    # The zero-initialised output layers would make every prediction 0 and every gradient vanish.
    for p in model.parameters():
        if p.abs().sum() == 0 and p.dim() > 1:
            torch.nn.init.normal_(p, std=0.05)
    return LabGenerator(model, TinyEncoder(), tiny_text, "lab:tiny", 32)
