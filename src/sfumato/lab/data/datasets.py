"""Datasets for the lab: CIFAR-10 read straight from its zip, captioned image folders, splits.

Images are kept as uint8 tensors (N, 3, H, W); ``LabeledImages.labels`` index into
``LabeledImages.classes`` and ``names`` records where each image came from. Captions are in
:mod:`sfumato.lab.data.captions`.
"""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from sfumato.lab.data.captions import CIFAR_CLASSES, TEMPLATES, pick, with_article

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class LabeledImages:
    """Images with class labels: ``images`` uint8 (N, 3, H, W), ``labels`` long (N,) into ``classes``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    names: list[str]

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (n,) or len(self.names) != n:
            raise ValueError(f"{n} images but {tuple(self.labels.shape)} labels and {len(self.names)} names")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | Sequence[int]) -> LabeledImages:
        """The images at ``index`` (same classes)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return LabeledImages(
            self.images[idx], self.labels[idx], list(self.classes), [self.names[int(i)] for i in idx]
        )

    def counts(self) -> dict[str, int]:
        """Images per class."""
        found = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, found, strict=True))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", disable=not enabled, dynamic_ncols=True)


def _ordered_classes(found: set[str]) -> list[str]:
    known = [c for c in CIFAR_CLASSES if c in found]
    return known + sorted(found - set(known))


def _choose_classes(available: list[str], classes: Sequence[str] | None, where: str) -> list[str]:
    if classes is None:
        return available
    chosen = list(classes)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise ValueError(f"unknown classes {unknown} in {where}; available: {available}")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"duplicate classes in {chosen}")
    return chosen


def _slice(members: list[str], cls: str, per_class: int | None, offset: int, where: str) -> list[str]:
    if offset < 0 or (per_class is not None and per_class < 0):
        raise ValueError("offset and per_class must be >= 0")
    stop = len(members) if per_class is None else offset + per_class
    if stop > len(members) or offset > len(members):
        raise ValueError(f"class {cls!r} in {where} has {len(members)} images; asked for [{offset}, {stop})")
    return members[offset:stop]


def _stack(arrays: list[np.ndarray], names: list[str]) -> torch.Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size ({sorted(shapes)[:3]}...); pass size= to resize them")
    if not arrays:
        return torch.zeros((0, 3, 0, 0), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_cifar(
    zip_path: str | Path,
    split: str = "train",
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    offset: int = 0,
    progress: bool = True,
) -> LabeledImages:
    """CIFAR-10 images read straight from the zip (members ``<split>/<class>/NNNN.jpg``).

    Deterministic: members are taken in sorted name order, class by class in the order of ``classes``
    (default: all ten in the standard order), images ``[offset, offset + per_class)`` of each class
    (default: all from ``offset``), so disjoint ranges give disjoint sets. ``labels`` index into the
    returned ``classes``. A tqdm bar shows for more than 1,000 images.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    zip_path = Path(zip_path)
    with zipfile.ZipFile(zip_path) as archive:
        by_class: dict[str, list[str]] = {}
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(IMAGE_SUFFIXES):
                by_class.setdefault(parts[1], []).append(name)
        if not by_class:
            raise ValueError(f"no {split}/<class>/<image> members in {zip_path}")
        where = f"{zip_path}:{split}"
        chosen = _choose_classes(_ordered_classes(set(by_class)), classes, where)
        members: list[str] = []
        labels: list[int] = []
        for label, cls in enumerate(chosen):
            picked = _slice(sorted(by_class[cls]), cls, per_class, offset, where)
            members += picked
            labels += [label] * len(picked)
        arrays = []
        with _progress(len(members), f"cifar {split}", progress and len(members) > 1000) as bar:
            for name in members:
                with Image.open(io.BytesIO(archive.read(name))) as img:
                    arrays.append(np.asarray(img.convert("RGB")))
                bar.update(1)
    return LabeledImages(_stack(arrays, members), torch.tensor(labels, dtype=torch.long), chosen, members)


def _cover(img: Image.Image, size: int) -> Image.Image:
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def load_image_folder(
    root: str | Path,
    size: int | None = None,
    classes: Sequence[str] | None = None,
    progress: bool = True,
) -> LabeledImages:
    """Images from ``root/<class>/*.{png,jpg,jpeg,webp}``, one subfolder per class.

    Classes are the subfolders holding at least one image, sorted (CIFAR-10 names first, in the
    standard order), or ``classes`` in the order given. With ``size`` every image is resized to cover
    ``size`` x ``size`` and centre-cropped; without it all images must share one size. ``names`` are
    paths relative to ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")

    def images_in(folder: Path) -> list[Path]:
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )

    found = {d.name: images_in(d) for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    available = _ordered_classes({c for c, files in found.items() if files})
    if classes is not None:
        available = _ordered_classes(set(found))
    chosen = _choose_classes(available, classes, str(root))
    if not chosen:
        raise ValueError(f"no class subfolders with images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    files = [(label, f) for label, cls in enumerate(chosen) for f in found[cls]]
    arrays = []
    with _progress(len(files), root.name, progress and len(files) > 1000) as bar:
        for _, path in files:
            with Image.open(path) as img:
                rgb = ImageOps.exif_transpose(img).convert("RGB")
            arrays.append(np.asarray(_cover(rgb, size) if size else rgb))
            bar.update(1)
    names = [p.relative_to(root).as_posix() for _, p in files]
    labels = torch.tensor([label for label, _ in files], dtype=torch.long)
    return LabeledImages(_stack(arrays, names), labels, chosen, names)


def photo_crops(
    folder: str | Path,
    per_photo: int,
    held_out: bool = False,
    every: int = 10,
    sizes: tuple[int, int] = (64, 128),
    out: int = 64,
    seed: int = 0,
) -> torch.Tensor:
    """uint8 (N, 3, out, out): ``per_photo`` random square crops of each photo in ``folder``.

    Crop sides are drawn from ``sizes`` (inclusive) in the photo's own pixels, then resized to ``out``:
    real photo detail at the scales a 64 px training view sees, where CIFAR-10 upsampled is only blur.
    A photo whose short side is below ``sizes[0]`` (the shared set has one at 56 px) gives crops of
    its whole short side.
    Every ``every``-th photo (sorted by name) is held out: ``held_out=True`` crops those instead.
    """
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    chosen = [f for i, f in enumerate(files) if (i % every == every - 1) == held_out]
    rng = np.random.default_rng(seed + (1 if held_out else 0))
    arrays = []
    for path in chosen:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
        for _ in range(per_photo):
            largest = min(sizes[1], *rgb.size)
            side = int(rng.integers(min(sizes[0], largest), largest + 1))
            x = int(rng.integers(0, rgb.width - side + 1))
            y = int(rng.integers(0, rgb.height - side + 1))
            crop = rgb.crop((x, y, x + side, y + side)).resize((out, out), Image.BICUBIC)
            arrays.append(np.asarray(crop))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[torch.Tensor]:
    """Split ``range(n)`` at random (seeded) into parts of the given fractions, each sorted.

    Part ``i`` holds ``round(n * sum(fractions[:i+1])) - round(n * sum(fractions[:i]))`` indices, so
    fractions summing to 1 cover every index; a smaller sum leaves the rest out.
    """
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to at most 1, got {list(fractions)}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    bounds = [0]
    total = 0.0
    for f in fractions:
        total += f
        bounds.append(min(n, round(n * total)))
    return [order[a:b].sort().values for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def load_captioned_folder(
    root: str | Path, size: int = 64, seed: int = 0
) -> tuple[torch.Tensor, list[str], list[str]]:
    """Images under ``root`` (recursive) with their captions, for fine-tuning on any folder.

    A caption is the text of the image's sidecar ``<name>.txt`` (as ``sfumato shade`` writes them), else a
    template caption of the folder's name ("a photo of a dog" for ``dog/``). Images are cover-resized to
    ``size``. Returns (uint8 images (N, 3, size, size), captions, problems): a file that cannot be read
    is skipped and named in ``problems``, so one bad file does not stop a run.
    """
    from sfumato.imageio import ImageInputError, collect_inputs, load_image

    rng = random.Random(seed)
    arrays, captions, problems = [], [], []
    for path, _ in collect_inputs([Path(root)]):
        try:
            loaded = load_image(path)
        except ImageInputError as e:
            problems.append(str(e))
            continue
        rgb = Image.fromarray((loaded.rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        arrays.append(np.asarray(_cover(rgb, size)))
        sidecar = path.with_suffix(".txt")
        text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
        captions.append(text or pick(rng, TEMPLATES).format(with_article(path.parent.name.replace("_", " "))))
    if not arrays:
        raise ValueError(f"no readable images in {root}" + (f": {'; '.join(problems)}" if problems else ""))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, captions, problems
