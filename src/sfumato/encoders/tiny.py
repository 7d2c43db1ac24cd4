"""Tiny autoencoders (madebyollin/taesd checkpoints) as sfumato encoders and decoders."""

from __future__ import annotations

from pathlib import Path

import torch

from sfumato.encoders.base import ImageEncoder
from sfumato.encoders.integrity import DamagedWeightsError, check_weights_file
from sfumato.encoders.taesd import build_decoder, build_encoder

# Short names for the upstream checkpoints; any other ``*_encoder.pth`` path works too.
TINY_ENCODERS: dict[str, str] = {
    "flux2": "taef2_encoder.pth",
    "sana": "taesana_encoder.pth",
    "sd": "taesd_encoder.pth",
    "sdxl": "taesdxl_encoder.pth",
    "sd3": "taesd3_encoder.pth",
    "flux1": "taef1_encoder.pth",
}
TINY_DECODERS: dict[str, str] = {name: f.replace("_encoder", "_decoder") for name, f in TINY_ENCODERS.items()}
del TINY_DECODERS["sana"]  # upstream ships no tiny Sana decoder


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Load a checkpoint as float32 CPU tensors (the files are float16), and whether its hash was verified.

    The file is checked first (:func:`check_weights_file`); a file torch cannot read becomes one clear
    :class:`DamagedWeightsError` naming it, not a traceback from deep inside the unpickler.
    """
    verified = check_weights_file(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise DamagedWeightsError(
            f"weights file {path} is truncated or not a PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DamagedWeightsError(f"weights file {path} does not hold a state dict of tensors")
    return {k: v.float() for k, v in sd.items()}, verified


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """:func:`load_checkpoint` without the verification flag."""
    return load_checkpoint(path)[0]


def layout_error(path: Path | str, kind: str, e: Exception) -> DamagedWeightsError:
    return DamagedWeightsError(
        f"weights file {path} does not have a TAESD {kind} layout ({type(e).__name__}: {e})"
    )


class TinyEncoder(ImageEncoder):
    """A TAESD-family encoder; input RGB in [0, 1], output the family's latent."""

    def __init__(self, state_dict: dict[str, torch.Tensor], name: str = "tiny") -> None:
        super().__init__()
        self.net, self.multiple = build_encoder(state_dict)
        self.net.load_state_dict(state_dict, strict=True)
        self.latent_channels = int(self.net[-1].out_channels)
        self.name = name
        self.verified = False  # set by the loader once the file's pinned hash matched
        self.source = ""  # the file it was loaded from, for the "unverified" note
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TinyDecoder(torch.nn.Module):
    """A TAESD-family 8x decoder; output RGB clamped to [0, 1]."""

    def __init__(self, state_dict: dict[str, torch.Tensor], name: str = "tiny") -> None:
        super().__init__()
        self.net = build_decoder(state_dict)
        self.net.load_state_dict(state_dict, strict=True)
        self.name = name
        self.scale = 8
        self.verified = False
        self.source = ""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).clamp(0, 1)
