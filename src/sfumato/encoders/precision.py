"""When the encoders and decoders run in bfloat16 on the CPU: only where that is fast.

bf16 autocast speeds the encoders up 1.3-2x on CPUs whose oneDNN has bf16 kernels (AVX-512 and newer),
and slows them down about a hundredfold on CPUs without them, where PyTorch falls back to reference
kernels: on this project's AVX2 AMD EPYC, one pass of the tiny FLUX.2 encoder with its backward on a
256 px image took 89 s in bf16 and 0.9 s in fp32, and decoding 40 latents 130 s against 1.8 s. So bf16
is used where oneDNN reports bf16 support and fp32 elsewhere. ``SFUMATO_BF16=1`` (or ``0``) forces it on
(or off), e.g. to reproduce a result made on the other kind of CPU: the two differ by rounding.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

ENV = "SFUMATO_BF16"


@functools.cache
def cpu_bf16() -> bool:
    """Whether CPU work that tolerates rounding runs in bf16 autocast here (see the module docstring)."""
    forced = os.environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"{ENV} must be 0 or 1, not {forced!r}")
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without that probe: AVX-512 is the closest public sign
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def precision(device: torch.device | str = "cpu") -> str:
    """``"bf16"`` or ``"fp32"``: what :func:`bf16_autocast` gives on ``device`` here, for reports."""
    return "bf16" if torch.device(device).type == "cpu" and cpu_bf16() else "fp32"


def bf16_autocast(device: torch.device | str, wanted: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on the CPU where it is fast and ``wanted``; otherwise nothing changes."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=wanted and precision(device) == "bf16")
