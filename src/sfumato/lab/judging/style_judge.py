"""The style judge: which artist (or which of the cloak's target styles) a 64 px image looks like.

Mimicry success is "the generator's images are judged to be by the artist", so the judge must know every
artist, plain photographs (what the base generator draws when it learned no style) and every built-in
target style of the cloak (so a protected run can report how much it drew the cloak's target instead).
Its classes are :data:`sfumato.lab.artists.JUDGE_CLASSES`.

It is trained only on the judge's share of each artist's works (:func:`sfumato.lab.artists.works` with
``part="judge"``): the works the mimicry experiment fine-tunes on are never seen. Within that share,
every ``test_every``-th work is held out entirely (all its views), and ``metrics.json`` reports the
accuracy on those held-out works: recognising a style, not remembering a picture. Views are cut exactly
as the mimic's training views are (:func:`sfumato.lab.artists.cut_views`).

The network and its training are :mod:`sfumato.lab.judges`' (``train_judge``: resumable, checkpointed,
``metrics.json``), with the ``style`` configuration below: a ResNet-9 on the full 64 px RGB view (style
lives in colour and fine texture, so no greyscale and no colour jitter), crops and mirroring only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import atomic_write_text
from sfumato.lab.data.artists import JUDGE_CLASSES, VIEW_SIZE, WORK_SIZE, spread, views_of, works
from sfumato.lab.data.datasets import LabeledImages
from sfumato.lab.judging.classifiers import METRICS, Judge, JudgeConfig, load_judge, train_judge
from sfumato.lab.storage import atomic_torch_save

STYLE_JUDGE = JudgeConfig(
    name="style",
    arch="resnet9",
    view="rgb64",
    widths=(32, 64, 128, 256),
    epochs=12,
    batch=128,
    lr=0.1,
    label_smoothing=0.1,
    seed=3,
    crop_pad=4,
    flip=True,
    jitter=0.0,
)
DATA = "data.pt"


@dataclass
class StyleJudgeSpec:
    """Everything that determines the style judge (its folder name is a hash of it)."""

    classes: tuple[str, ...] = JUDGE_CLASSES
    work_size: int = WORK_SIZE
    view_scale: tuple[float, float] = (0.5, 1.0)
    train_views: int = 1000  # per class, spread evenly over the class's training works
    test_views: int = 200  # per class, over its held-out works
    test_every: int = 4  # every 4th judge work of a class is held out (Van Gogh: 2 of 8 paintings)
    works_limit: int | None = None  # at most this many judge works per class (short test runs)
    judge: JudgeConfig = field(default_factory=lambda: replace(STYLE_JUDGE))

    def __post_init__(self) -> None:
        self.classes = tuple(self.classes)
        self.view_scale = tuple(self.view_scale)  # type: ignore[assignment]
        unknown = [c for c in self.classes if c not in JUDGE_CLASSES]
        if unknown:
            raise ValueError(f"unknown style judge classes {unknown}; known: {', '.join(JUDGE_CLASSES)}")
        if self.test_every < 2:
            raise ValueError("test_every must be >= 2 (some works must be left to train on)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["view_scale"] = list(self.view_scale)
        d["judge"] = self.judge.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StyleJudgeSpec:
        d = dict(d)
        d["judge"] = JudgeConfig.from_dict(d["judge"])
        d["classes"] = tuple(d["classes"])
        d["view_scale"] = tuple(d["view_scale"])
        return cls(**d)

    def key(self) -> str:
        """A short hash of what shapes the judge (not its epoch count, which may grow)."""
        d = self.to_dict()
        d["judge"].pop("epochs")
        d["judge"].pop("eval_batch")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def folder(self, workdir: str | Path) -> Path:
        return Path(workdir) / "judges" / f"style-{self.key()}"


def judge_data(
    spec: StyleJudgeSpec, shared: str | Path | None, progress: Callable[[str], None] | None = None
) -> tuple[LabeledImages, LabeledImages]:
    """(train, test) views of the judge's works of every class; test views come from held-out works."""
    parts: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    names: dict[str, list[str]] = {"train": [], "test": []}
    for label, cls in enumerate(spec.classes):
        if progress is not None:
            progress(f"style judge data: {cls}")
        w = works(cls, "judge", shared, work_size=spec.work_size, limit=spec.works_limit)
        held = [k % spec.test_every == spec.test_every - 1 for k in range(len(w.images))]
        for part, total, keep in (("train", spec.train_views, False), ("test", spec.test_views, True)):
            chosen = [img for img, h in zip(w.images, held, strict=True) if h == keep]
            chosen_names = [n for n, h in zip(w.names, held, strict=True) if h == keep]
            v = views_of(cls, chosen, total, size=VIEW_SIZE, scale=spec.view_scale, salt=f"judge-{part}")
            parts[part].append(v)
            labels[part] += [label] * v.shape[0]
            per = spread(total, len(chosen))
            names[part] += [f"{cls}/{n}" for n, m in zip(chosen_names, per, strict=True) for _ in range(m)]
    out = []
    for part in ("train", "test"):
        out.append(
            LabeledImages(
                torch.cat(parts[part]),
                torch.tensor(labels[part], dtype=torch.long),
                list(spec.classes),
                names[part],
            )
        )
    return out[0], out[1]


def train_style_judge(
    workdir: str | Path,
    shared: str | Path | None,
    spec: StyleJudgeSpec | None = None,
    *,
    progress: Callable[[str], None] | None = print,
    bars: bool = False,
) -> Path:
    """Train (or resume, or return) the style judge of ``spec`` under ``workdir/judges``; its folder.

    The views are cut once and cached in ``data.pt``; ``spec.json`` and, when done, ``metrics.json``
    (held-out accuracy overall and per class, plus the split) are written beside the checkpoint.
    """
    spec = spec or StyleJudgeSpec()
    out = spec.folder(workdir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spec.json", json.dumps(spec.to_dict(), indent=2) + "\n")
    metrics = out / METRICS
    if metrics.exists() and json.loads(metrics.read_text()).get("epochs", 0) >= spec.judge.epochs:
        return out
    cache = out / DATA
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        train, test = (LabeledImages(**saved[p]) for p in ("train", "test"))
    else:
        train, test = judge_data(spec, shared, progress)
        atomic_torch_save({p: asdict(d) for p, d in (("train", train), ("test", test))}, cache)
    if progress is not None:
        progress(f"training the style judge ({len(train)} views, {len(spec.classes)} classes) in {out}")
    train_judge(spec.judge, train, test, out, progress=bars)
    result = json.loads(metrics.read_text())
    result["held_out"] = (
        f"views of works never trained on: every {spec.test_every}th judge work of each class; "
        "no mimicry work is in either set"
    )
    result["works"] = {p: sorted(set(d.names)) for p, d in (("train", train), ("test", test))}
    atomic_write_text(metrics, json.dumps(result, indent=2) + "\n")
    return out


def load_style_judge(workdir: str | Path, spec: StyleJudgeSpec | None = None) -> Judge:
    """The trained style judge of ``spec`` (raises FileNotFoundError when it has not finished)."""
    spec = spec or StyleJudgeSpec()
    folder = spec.folder(workdir)
    if not (folder / METRICS).exists():
        raise FileNotFoundError(f"no finished style judge in {folder}; run 'sfumato lab style-judge'")
    judge = load_judge(folder)
    judge.info["key"] = spec.key()
    return judge
