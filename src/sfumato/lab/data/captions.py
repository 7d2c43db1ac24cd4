"""Captions for the lab: the CIFAR-10 classes, their training words and held-out related words.

Every class has training words (:data:`SYNONYMS`) and held-out related words (:data:`RELATED`, never used
in a training caption, for the bleed-through evaluation). A training caption is a random template of
:data:`TEMPLATES` filled with a random training word and its article ("a picture of an airplane"); the
evaluation prompt is :func:`prompt_for` ("a photo of a dog").
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np
import torch

CIFAR_CLASSES: list[str] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


#: Words used in training captions, per class (the class name is always one of them).
SYNONYMS: dict[str, list[str]] = {
    "airplane": ["airplane", "plane"],
    "automobile": ["car", "automobile"],
    "bird": ["bird"],
    "cat": ["cat"],
    "deer": ["deer"],
    "dog": ["dog"],
    "frog": ["frog"],
    "horse": ["horse"],
    "ship": ["ship", "boat"],
    "truck": ["truck"],
}


#: Related words held out of every training caption: prompts for measuring bleed-through.
RELATED: dict[str, list[str]] = {
    "airplane": ["jet", "airliner"],
    "automobile": ["sports car", "sedan"],
    "bird": ["sparrow", "finch"],
    "cat": ["kitten", "tabby"],
    "deer": ["fawn", "stag"],
    "dog": ["puppy", "hound"],
    "frog": ["toad", "bullfrog"],
    "horse": ["pony", "stallion"],
    "ship": ["ferry", "sailboat"],
    "truck": ["lorry", "dump truck"],
}


#: Caption templates; ``{}`` takes the word with its article ("a dog", "an airplane").
TEMPLATES: list[str] = [
    "a photo of {}",
    "a picture of {}",
    "an image of {}",
    "a close-up photo of {}",
    "a low-resolution photo of {}",
    "a blurry photo of {}",
    "a cropped photo of {}",
    "a bright photo of {}",
    "a dark photo of {}",
    "a small photo of {}",
]


#: The evaluation template (also one of the training templates).
PROMPT_TEMPLATE = TEMPLATES[0]
Rng = random.Random | np.random.Generator | torch.Generator


def with_article(word: str) -> str:
    """``"dog"`` -> ``"a dog"``, ``"airplane"`` -> ``"an airplane"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def prompt_for(word: str) -> str:
    """The evaluation prompt for a class name or any word: ``"a photo of a dog"``."""
    return PROMPT_TEMPLATE.format(with_article(word))


def pick(rng: Rng, options: Sequence[str]) -> str:
    if isinstance(rng, np.random.Generator):
        return options[int(rng.integers(len(options)))]
    if isinstance(rng, torch.Generator):
        return options[int(torch.randint(len(options), (1,), generator=rng))]
    return rng.choice(list(options))


def caption_for(label_or_word: int | str, rng: Rng) -> str:
    """A random training caption.

    An int is a CIFAR-10 label (index into :data:`CIFAR_CLASSES`); a class name draws one of its
    :data:`SYNONYMS`; any other word is used as it is. ``rng`` is a ``random.Random``, a numpy
    ``Generator`` or a ``torch.Generator``.
    """
    if isinstance(label_or_word, (int, np.integer)) or (
        isinstance(label_or_word, torch.Tensor) and label_or_word.ndim == 0
    ):
        word = CIFAR_CLASSES[int(label_or_word)]
    else:
        word = str(label_or_word)
    words = SYNONYMS.get(word, [word])
    return pick(rng, TEMPLATES).format(with_article(pick(rng, words)))


def captions_for(labels: torch.Tensor | Sequence[int], classes: Sequence[str], seed: int = 0) -> list[str]:
    """Deterministic training captions for ``labels`` that index into ``classes``."""
    rng = random.Random(seed)
    return [caption_for(classes[int(label)], rng) for label in labels]


def contains_word(text: str, word: str) -> bool:
    """Whether ``word`` (a word or phrase) occurs in ``text`` as whole words, ignoring case."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, flags=re.IGNORECASE) is not None
