"""Full-size latent autoencoders loaded with ``diffusers`` (the optional ``sfumato[diffusers]`` extra).

The tiny TAESD encoders are fast stand-ins; attacking the real VAE of a generator (a user's local
copy of e.g. the SD or FLUX VAE) is slower but removes the distillation gap. Only local directories
are accepted and ``diffusers`` is told never to go online: sfumato must run offline and must not
fetch multi-hundred-megabyte models behind the user's back.

``diffusers`` is imported lazily so that the core package works without it; constructing one of
these classes without it installed raises an ``ImportError`` that says how to install it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sfumato.encoders.base import ImageEncoder

__all__ = ["SUPPORTED_CLASSES", "DiffusersDecoder", "DiffusersEncoder", "load_autoencoder"]

# Autoencoder classes with the AutoencoderKL interface (``encode(x).latent_dist`` and
# ``decode(z).sample`` on images in [-1, 1]); FLUX.2's VAE is one of them. Others, such as Sana's
# AutoencoderDC, encode differently and are deliberately refused rather than guessed at.
SUPPORTED_CLASSES = ("AutoencoderKL", "AutoencoderKLFlux2")

_INSTALL_HINT = "pip install 'sfumato[diffusers]'"


def _diffusers() -> Any:
    """Import diffusers on first use, turning its absence into an actionable message."""
    try:
        import diffusers
    except ImportError as exc:
        raise ImportError(
            f"loading a full diffusers autoencoder needs the optional 'diffusers' package ({exc}); "
            f"install it with: {_INSTALL_HINT}"
        ) from exc
    return diffusers


def _model_dir(path: Path | str) -> tuple[Path, str | None]:
    """Resolve ``path`` to (directory, subfolder) holding the VAE's ``config.json``.

    Accepts the VAE folder itself or a whole pipeline folder with a ``vae/`` subfolder, which is
    how most users have the model on disk. Checked here because ``from_pretrained`` would take a
    missing directory for a Hub repository id and give a confusing network error.
    """
    root = Path(path).expanduser()
    if (root / "config.json").is_file():
        return root, None
    if (root / "vae" / "config.json").is_file():
        return root, "vae"
    if not root.exists():
        raise FileNotFoundError(f"no such autoencoder directory: {root}")
    raise FileNotFoundError(
        f"{root} is not a diffusers autoencoder directory: it has neither config.json nor vae/config.json"
    )


def load_autoencoder(path: Path | str) -> nn.Module:
    """Load a local diffusers VAE as float32 on the CPU, in eval mode, without touching the network."""
    root, subfolder = _model_dir(path)
    config_path = root / (subfolder or "") / "config.json"
    class_name = json.loads(config_path.read_text()).get("_class_name", "AutoencoderKL")
    if class_name not in SUPPORTED_CLASSES:
        raise ValueError(
            f"{config_path} describes a {class_name}; sfumato supports {', '.join(SUPPORTED_CLASSES)}"
        )
    diffusers = _diffusers()
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise ImportError(f"this diffusers ({diffusers.__version__}) has no {class_name}; upgrade it")
    kwargs: dict[str, Any] = {"torch_dtype": torch.float32, "local_files_only": True}
    if subfolder is not None:
        kwargs["subfolder"] = subfolder
    vae = cls.from_pretrained(str(root), **kwargs)
    return vae.to(device="cpu", dtype=torch.float32).eval()


def _default_name(path: Path | str) -> str:
    return f"diffusers:{Path(path).expanduser().resolve().name}"


class DiffusersEncoder(ImageEncoder):
    """The encoder half of a diffusers VAE, returning the posterior mean.

    The mean is what Nightshade- and PhotoGuard-style attacks target: it is the deterministic part
    of the latent (sampling only adds noise around it) and it gives a clean gradient. Latents are
    returned unscaled, i.e. without the config's ``scaling_factor``/``shift_factor``; the scaled
    ones are available from :meth:`to_model_latent` for comparison with what the denoiser sees.
    """

    def __init__(self, path: Path | str, name: str | None = None) -> None:
        super().__init__()
        self.vae = load_autoencoder(path)
        config = self.vae.config
        self.name = name or _default_name(path)
        self.source = str(path)
        # Every down block but the last halves the resolution.
        self.multiple = 2 ** (len(config.block_out_channels) - 1)
        self.latent_channels = int(config.latent_channels)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> posterior mean (B, C, H/f, W/f), differentiable in ``x``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        return self.vae.encode(x * 2 - 1).latent_dist.mean

    def to_model_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the config's shift and scale, giving the latent the diffusion model works on."""
        config = self.vae.config
        shift = getattr(config, "shift_factor", None) or 0.0
        scale = getattr(config, "scaling_factor", None) or 1.0
        return (z - shift) * scale


class DiffusersDecoder(nn.Module):
    """The decoder half of a diffusers VAE: unscaled latent -> RGB in [0, 1].

    Used to look at what an attacked latent turns back into; the output is clamped to [0, 1], so
    do not optimise through it where the clamp is active.
    """

    def __init__(
        self, path: Path | str | None = None, name: str | None = None, *, vae: nn.Module | None = None
    ):
        super().__init__()
        if (path is None) == (vae is None):
            raise ValueError("pass exactly one of path and vae")
        self.vae = vae if vae is not None else load_autoencoder(path)  # type: ignore[arg-type]
        self.name = name or (_default_name(path) if path is not None else "diffusers")
        self.latent_channels = int(self.vae.config.latent_channels)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_encoder(cls, encoder: DiffusersEncoder) -> DiffusersDecoder:
        """Share the already loaded VAE instead of reading it from disk a second time."""
        return cls(name=encoder.name, vae=encoder.vae)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) unscaled latent -> (B, 3, h*f, w*f) RGB in [0, 1]."""
        return ((self.vae.decode(z).sample + 1) / 2).clamp(0, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)
