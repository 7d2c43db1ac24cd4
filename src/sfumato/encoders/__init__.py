"""The image encoders sfumato attacks: the latent encoders of real generator families.

``load_encoder("flux2")`` gives the tiny FLUX.2 encoder; a path to any TAESD-layout
``*_encoder.pth`` or (with the ``diffusers`` extra) to a local ``AutoencoderKL`` folder works too.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from sfumato.encoders.base import ImageEncoder
from sfumato.encoders.roundtrip import SUFFIX, RoundTripEncoder
from sfumato.encoders.tiny import (
    TINY_DECODERS,
    TINY_ENCODERS,
    TinyDecoder,
    TinyEncoder,
    layout_error,
    load_checkpoint,
)

__all__ = [
    "ImageEncoder",
    "TinyDecoder",
    "TinyEncoder",
    "load_decoder",
    "load_encoder",
    "register_loader",
    "TINY_ENCODERS",
]

EncoderLoader = Callable[[str], "ImageEncoder | None"]
_LOADERS: list[EncoderLoader] = []


def register_loader(loader: EncoderLoader) -> None:
    """Let another part of sfumato resolve encoder names the engine does not know (the lab's own
    autoencoders, by checkpoint path), so the engine attacks them without importing that part.
    ``loader(name)`` returns the encoder, or None for a name it does not handle. Registering the
    same loader twice has no effect."""
    if loader not in _LOADERS:
        _LOADERS.append(loader)
        _load_encoder_cached.cache_clear()


def _resolve(name: str, files: dict[str, str], weights_dir: str | Path | None) -> tuple[Path, str]:
    from sfumato.encoders.weights import find_weights

    path = Path(name)
    if path.suffix == ".pth" and path.exists():
        return path, path.stem.replace("_encoder", "").replace("_decoder", "")
    if name not in files and not name.endswith(".pth"):
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(files)} or give a .pth path")
    return find_weights(files.get(name, name), weights_dir), name


@lru_cache(maxsize=16)
def _load_encoder_cached(name: str, weights_dir: str | None) -> ImageEncoder:
    for loader in _LOADERS:
        found = loader(name)
        if found is not None:
            return found
    path = Path(name)
    if path.is_dir():
        from sfumato.encoders.diffusers_vae import DiffusersEncoder

        return DiffusersEncoder(path)
    file, short = _resolve(name, TINY_ENCODERS, weights_dir)
    sd, verified = load_checkpoint(file)
    try:
        encoder = TinyEncoder(sd, name=short)
    except (KeyError, IndexError, RuntimeError) as e:
        raise layout_error(file, "encoder", e) from None
    encoder.verified = verified
    encoder.source = str(file)
    return encoder


def load_encoder(name: str, weights_dir: str | Path | None = None) -> ImageEncoder:
    """Load (once per process) an encoder by short name, checkpoint path or diffusers folder;
    ``<family>-decoded`` is that family's autoencoder round trip (see :mod:`sfumato.encoders.roundtrip`)."""
    name, wd = str(name), None if weights_dir is None else str(weights_dir)
    if name.endswith(SUFFIX) and name not in TINY_ENCODERS:
        return _load_round_trip_cached(name[: -len(SUFFIX)], wd)
    return _load_encoder_cached(name, wd)


@lru_cache(maxsize=8)
def _load_round_trip_cached(family: str, weights_dir: str | None) -> ImageEncoder:
    if family not in TINY_DECODERS:
        raise ValueError(f"no decoder for {family!r}: a round trip needs one of {sorted(TINY_DECODERS)}")
    encoder = _load_encoder_cached(family, weights_dir)
    return RoundTripEncoder(encoder, _load_decoder_cached(family, weights_dir))


@lru_cache(maxsize=8)
def _load_decoder_cached(name: str, weights_dir: str | None) -> TinyDecoder:
    file, short = _resolve(name, TINY_DECODERS, weights_dir)
    sd, verified = load_checkpoint(file)
    try:
        decoder = TinyDecoder(sd, name=short)
    except (KeyError, IndexError, RuntimeError) as e:
        raise layout_error(file, "decoder", e) from None
    decoder.verified = verified
    decoder.source = str(file)
    return decoder


def load_decoder(name: str = "flux2", weights_dir: str | Path | None = None) -> TinyDecoder:
    """Load (once per process) the tiny decoder of a latent family."""
    return _load_decoder_cached(str(name), None if weights_dir is None else str(weights_dir))
