"""Generators the generator-aware objectives attack: the lab's checkpoints and diffusers pipelines.

:func:`load_generator` takes what ``--against`` names: a ``sfumato lab train-base`` folder (or its
``checkpoint.pt``), or a diffusers pipeline folder of the Stable Diffusion 1.x / 2.x / SDXL class.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sfumato.generators.base import Condition, Generator, GeneratorEncoder, denoising_loss, repeat_condition
from sfumato.generators.diffusers_pipeline import DiffusersGenerator, is_pipeline_folder
from sfumato.generators.lab import LabGenerator

__all__ = [
    "Condition",
    "DiffusersGenerator",
    "Generator",
    "GeneratorEncoder",
    "LabGenerator",
    "denoising_loss",
    "load_generator",
    "repeat_condition",
]


_LAST: dict[tuple[str, str], Generator] = {}


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The generator at ``path``: a diffusers pipeline folder, or a lab checkpoint (folder or file).

    The last one loaded is kept, so a folder of works protected one by one loads it once.
    """
    key = (str(Path(path).resolve()), str(torch.device(device)))
    if key not in _LAST:
        _LAST.clear()
        _LAST[key] = _load(Path(path), device)
    return _LAST[key]


def _load(p: Path, device: str | torch.device) -> Generator:
    if is_pipeline_folder(p):
        return DiffusersGenerator.load(p, device)
    if p.suffix == ".pt" and p.is_file() or (p / "checkpoint.pt").is_file():
        return LabGenerator.load(p, device)
    raise ValueError(
        f"--against {p}: neither a diffusers pipeline folder (unet, vae, text_encoder, tokenizer) "
        "nor a lab checkpoint ('sfumato lab train-base' folder or checkpoint.pt)"
    )
