"""Image latents for the lab: batched encoding and a resumable on-disk cache.

:func:`encode_images` turns uint8 images into an encoder's latents at a working size (CIFAR's 32 px is
upscaled to 64 px, bicubic with antialiasing, giving 32x8x8 FLUX.2 latents). :func:`cached_latents`
keeps them on disk, keyed by a hash of the caller's key, the encoder (name and weights), the size and
the images themselves; it encodes in chunks, each saved as it is done, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from sfumato.encoders.precision import bf16_autocast
from sfumato.lab.storage import atomic_torch_save

DEFAULT_SIZE = 64
DEFAULT_CHUNK = 2048
_VERSION = 2


def _device(encoder: torch.nn.Module) -> torch.device:
    for p in encoder.parameters():
        return p.device
    return torch.device("cpu")


def _check(images: torch.Tensor, encoder: torch.nn.Module, size: int) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    multiple = int(getattr(encoder, "multiple", 8))
    if size <= 0 or size % multiple:
        raise ValueError(f"size must be a positive multiple of {multiple}, got {size}")


def to_unit(images: torch.Tensor, size: int = DEFAULT_SIZE) -> torch.Tensor:
    """uint8 (N, 3, h, w) -> float32 [0, 1] (N, 3, size, size), bicubic with antialiasing."""
    x = images.float().div_(255.0)
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 1.0)
    return x


def _encode_into(
    out: torch.Tensor, images: torch.Tensor, encoder: torch.nn.Module, size: int, batch: int, bar
) -> None:
    device = _device(encoder)
    encode = getattr(encoder, "encode", encoder)
    # In bf16 where the CPU makes that fast, as the engine's optimiser runs the encoder (1 % latent error).
    with torch.no_grad(), bf16_autocast(device):
        for start in range(0, images.shape[0], batch):
            x = to_unit(images[start : start + batch], size).to(device)
            out[start : start + x.shape[0]] = encode(x).float().cpu()
            if bar is not None:
                bar.update(x.shape[0])


def _latent_shape(images: torch.Tensor, encoder: torch.nn.Module, size: int) -> tuple[int, int, int]:
    channels = int(getattr(encoder, "latent_channels", 0) or 0)
    factor = int(getattr(encoder, "multiple", 8))
    if channels:
        return channels, size // factor, size // factor
    with torch.no_grad():  # an encoder that does not say: ask it with one image
        probe = getattr(encoder, "encode", encoder)(to_unit(images[:1], size).to(_device(encoder)))
    return tuple(probe.shape[1:])


def _bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="image", disable=not enabled, dynamic_ncols=True
    )


def encode_images(
    images: torch.Tensor,
    encoder: torch.nn.Module,
    size: int = DEFAULT_SIZE,
    batch: int = 256,
    progress: bool = True,
) -> torch.Tensor:
    """Latents (N, C, size/8, size/8) float32 on the CPU of uint8 images (N, 3, h, w), resized to ``size``."""
    _check(images, encoder, size)
    if images.shape[0] == 0:
        return torch.zeros(
            (0, *_latent_shape(torch.zeros(1, 3, size, size, dtype=torch.uint8), encoder, size))
        )
    out = torch.empty((images.shape[0], *_latent_shape(images, encoder, size)))
    with _bar(images.shape[0], 0, f"encode {getattr(encoder, 'name', 'latents')}", progress) as bar:
        _encode_into(out, images, encoder, size, batch, bar)
    return out


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """A hash of an encoder's name and weights (so a retrained encoder never reuses stale latents)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(getattr(encoder, "name", type(encoder).__name__)).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def images_checksum(images: torch.Tensor) -> str:
    """A hash of an image tensor's shape, dtype and values."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(images.shape)}{images.dtype}".encode())
    h.update(images.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_digest(key: str, images: torch.Tensor, encoder: torch.nn.Module, size: int = DEFAULT_SIZE) -> str:
    """The cache key of :func:`cached_latents`: a hash of (key, encoder, size, N, image checksum)."""
    parts = [
        f"v{_VERSION}",
        key,
        str(getattr(encoder, "name", type(encoder).__name__)),
        encoder_fingerprint(encoder),
        str(size),
        str(images.shape[0]),
        images_checksum(images),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cache_path(key: str, digest: str, encoder: torch.nn.Module, size: int, cache_dir: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{key}-{getattr(encoder, 'name', 'encoder')}")[:80]
    return Path(cache_dir) / f"{slug}-{size}px-{digest[:16]}.pt"


def _load(path: Path, digest: str, **expect: int) -> torch.Tensor | None:
    """The latents stored at ``path`` if it is a complete file for ``digest`` (and ``expect``), else None."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file is simply recomputed
        return None
    if not isinstance(data, dict) or data.get("digest") != digest:
        return None
    if any(data.get(k) != v for k, v in expect.items()):
        return None
    latents = data.get("latents")
    return latents if isinstance(latents, torch.Tensor) else None


def cached_latents(
    key: str,
    images: torch.Tensor,
    encoder: torch.nn.Module,
    cache_dir: str | Path,
    size: int = DEFAULT_SIZE,
    batch: int = 256,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> torch.Tensor:
    """:func:`encode_images`, cached on disk under ``cache_dir`` and resumable.

    The file name carries ``key``, the encoder name, the size and a digest of (key, encoder name and
    weights, size, N, image checksum), so changing any of them encodes afresh. Work is done in chunks
    of ``chunk`` images, each written (atomically) under ``<file>.parts/`` as it finishes; a rerun after
    an interruption reuses the finished chunks. The complete result is written atomically and the
    parts removed.
    """
    _check(images, encoder, size)
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    digest = cache_digest(key, images, encoder, size)
    path = cache_path(key, digest, encoder, size, Path(cache_dir))
    done = _load(path, digest, n=images.shape[0], size=size)
    if done is not None:
        return done

    parts_dir = path.with_name(path.name + ".parts")
    n = images.shape[0]
    shape = _latent_shape(images, encoder, size) if n else (0, 0, 0)
    out = torch.empty((n, *shape))
    todo = []
    for index, start in enumerate(range(0, n, chunk)):
        stop = min(n, start + chunk)
        part = _load(parts_dir / f"{index:05d}.pt", digest, start=start, stop=stop)
        if part is not None and tuple(part.shape) == (stop - start, *shape):
            out[start:stop] = part
        else:
            todo.append((index, start, stop))
    remaining = sum(stop - start for _, start, stop in todo)
    with _bar(n, n - remaining, f"encode {key} ({getattr(encoder, 'name', 'latents')})", progress) as bar:
        for index, start, stop in todo:
            _encode_into(out[start:stop], images[start:stop], encoder, size, batch, bar)
            meta = {"digest": digest, "start": start, "stop": stop}
            atomic_torch_save({**meta, "latents": out[start:stop].clone()}, parts_dir / f"{index:05d}.pt")
    final = {"digest": digest, "version": _VERSION, "key": key, "n": n, "size": size, "latents": out}
    atomic_torch_save(final, path)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return out
