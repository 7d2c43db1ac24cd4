"""The batch runner: protect every image of a set of files and folders, resumably.

For each input ``in/sub/a.jpg`` it writes, under the output folder, ``sub/a.png`` (the protected
image), ``sub/a.png.json`` (the report, with the input, output and any warnings) and, for ``shade``,
``sub/a.txt`` (the caption a scraper would pair with the image). At the end ``summary.md`` and
``summary.csv`` hold one row per image. A rerun skips every image whose sidecar records the same
settings; one bad file is reported and the batch carries on. Inputs are never overwritten.

The command line (:mod:`sfumato.cli`) is a thin layer over :func:`run_batch`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sfumato.budget import make_budget
from sfumato.encoders import load_decoder, load_encoder
from sfumato.encoders.weights import ChecksumError
from sfumato.families import resolve_encoders
from sfumato.imageio import (
    JPEG_LOSSY_WARNING,
    MIN_SIDE,
    ImageInputError,
    LoadedImage,
    atomic_write_bytes,
    atomic_write_text,
    collect_inputs,
    encode_image,
    load_image,
)
from sfumato.inspect import sidecar_path
from sfumato.names import safe_relative
from sfumato.optimise import SPEED, TILE
from sfumato.outputs import (
    OutputFolderError,
    digest_bytes,
    digest_file,
    folder_problem,
    is_our_report,
    prepare_output_folder,
    read_report,
    remove_leftovers,
)
from sfumato.protect import Settings, as_views, cloak, image_identity, resolve_device, shade
from sfumato.report import markdown_table, summary_row
from sfumato.styles import STYLE_NAMES
from sfumato.targets import choose_anchor, set_style, style_distances

MODES = ("shade", "cloak")
FORMATS = {"png": ".png", "jpg": ".jpg", "jpeg": ".jpg", "webp": ".webp"}
WEBP_LOSSY_WARNING = "WebP below quality 100 is lossy and weakens the protection; prefer PNG or --quality 100"
LARGE_PIXELS = 1 << 20  # images from this size up get an inner progress bar over optimisation steps
SUMMARY_MD = "summary.md"
SUMMARY_CSV = "summary.csv"
_ORIENTATION_TAG = 0x0112

Echo = Callable[[str], None]


class BatchError(Exception):
    """A problem that stops the batch before it starts (bad options, nothing to do); one line."""


@dataclass
class BatchItem:
    """One image the batch protected now (``done``) or found already protected (``skipped``)."""

    input: Path
    output: Path
    report: dict[str, Any]


@dataclass
class BatchResult:
    done: list[BatchItem] = field(default_factory=list)
    skipped: list[BatchItem] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    out_dir: Path = Path(".")
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # met in a folder, not an image we read
    kept: list[str] = field(default_factory=list)  # the user's files left in place, one sentence each
    stopped: str | None = None  # why the batch stopped before the end (full disk, read-only folder)

    @property
    def ok(self) -> bool:
        return not self.failed and self.stopped is None

    def summary_line(self) -> str:
        ignored = f", {len(self.ignored)} ignored" if self.ignored else ""
        return (
            f"{len(self.done)} protected, {len(self.skipped)} skipped (already done), "
            f"{len(self.failed)} failed{ignored}; output in {self.out_dir}"
        )


@dataclass
class _Job:
    """What run_batch needs to know about the options, checked once before any work."""

    mode: str
    common: dict[str, Any]  # keyword arguments shared by shade/cloak and Settings
    call: dict[str, Any]  # keyword arguments of shade/cloak only (device, weights, ...)
    concept: str | None = None
    as_concept: str | None = None
    anchors: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)
    style: str = "auto"
    style_image: str | None = None
    style_choice: dict[str, Any] | None = None  # how --style auto chose the set's one style
    identities: dict[Path, tuple[str | None, str | None]] = field(default_factory=dict)

    def settings(self, anchor: Path | None) -> Settings:
        """The settings shade/cloak will record, so a rerun can compare keys before computing."""
        if self.mode == "shade":
            name, digest = self._identity(anchor)
            return Settings(
                mode="shade",
                concept=self.concept,
                as_concept=self.as_concept,
                target_name=name,
                target_sha256=digest,
                **self.common,
            )
        name, digest = (None, None) if self.style_image is None else self._identity(Path(self.style_image))
        return Settings(
            mode="cloak",
            style=self.style if self.style_image is None else None,
            style_image=name,
            style_image_sha256=digest,
            **self.common,
        )

    def _identity(self, path: Path | None) -> tuple[str | None, str | None]:
        if path is None:
            return None, None
        if path not in self.identities:
            self.identities[path] = image_identity(path)
        return self.identities[path]


# ------------------------------------------------------------------------------------------------ API


def run_batch(
    inputs: Sequence[Path | str],
    out_dir: Path | str,
    mode: str,
    *,
    concept: str | None = None,
    as_concept: str | None = None,
    target_images: Path | str | Sequence[Path | str] | None = None,
    style: str = "auto",
    style_image: Path | str | None = None,
    style_per_image: bool = False,
    encoders: Sequence[str] | None = None,
    encoder_weights: Sequence[float] = (),
    intensity: str = "default",
    budget: str = "jnd",
    eps: float | None = None,
    speed: str = "default",
    steps: int | None = None,
    seed: int = 0,
    tile: int = TILE,
    device: str = "auto",
    weights_dir: Path | str | None = None,
    fmt: str = "png",
    quality: int = 95,
    progress: bool = True,
    verbose: bool = True,
    robust: bool = False,
    views: int | None = None,
    against: Path | str | None = None,
    objective: str | None = None,
    prompt: str | None = None,
) -> BatchResult:
    """Protect every image in ``inputs`` (files, or folders searched recursively) into ``out_dir``.

    ``mode`` is ``"shade"`` (needs ``target_images``: a folder or files of the concept to pull toward,
    one chosen per source by aspect ratio; ``concept`` is written as the caption) or ``"cloak"``
    (``style``: a built-in style name or ``"auto"``, or ``style_image``). ``"auto"`` chooses one style for
    the whole set (the middling-to-far one for most works, see :func:`sfumato.targets.set_style`), so a
    mimic trained on the set sees one target; ``style_per_image`` chooses per image instead.
    ``eps`` is on [0, 1] images.
    ``progress`` shows tqdm bars, ``verbose`` one line per image; failures and format warnings are
    always printed (to stderr). ``robust`` optimises through random countermeasures (JPEG, resizing,
    ...) so the protection survives them, ``views`` (a training resolution in px) through the random
    crops a fine-tuning pipeline cuts at that size (see :func:`sfumato.shade`). ``against``, ``objective``
    and ``prompt`` attack a generator with a per-work objective (see :func:`sfumato.shade`). Raises
    :class:`BatchError` for problems found before starting, and ``WeightsNotFoundError`` when an
    encoder's weights cannot be found.
    """
    out = Path(out_dir)
    job = _prepare(
        mode,
        concept=concept,
        as_concept=as_concept,
        style=style,
        style_image=style_image,
        encoders=encoders,
        encoder_weights=encoder_weights,
        intensity=intensity,
        budget=budget,
        eps=eps,
        speed=speed,
        steps=steps,
        seed=seed,
        tile=tile,
        device=device,
        weights_dir=weights_dir,
        robust=robust,
        views=views,
        against=against,
        objective=objective,
        prompt=prompt,
    )
    suffix = _suffix(fmt)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise BatchError(f"quality must be an integer from 1 to 100, not {quality!r}")
    result = BatchResult(out_dir=out)
    files = _collect(inputs, out, result)
    forbidden_extra: list[Path] = []
    if mode == "shade":
        if target_images is None:
            raise BatchError("shade needs target images (--target-images): photos of the concept to mimic")
        job.anchors = _collect_anchors(target_images, result)
        forbidden_extra = [p for p, _ in job.anchors]
    elif job.style_image is not None:
        forbidden_extra = [Path(job.style_image)]
    try:
        prepare_output_folder(out)
    except OutputFolderError as e:
        raise BatchError(str(e)) from None
    _warn_lossy(suffix, quality)
    _print_ignored(result)
    if mode == "cloak" and job.style_image is None and job.style == "auto" and not style_per_image:
        _choose_set_style(job, files, weights_dir, verbose)

    runner = _Runner(job, out, suffix, quality, files, forbidden_extra, progress, verbose, result)
    runner.run()
    _write_summary(out, result)
    _print_failures(result)
    return result


# ------------------------------------------------------------------------------------------ preparing


def _prepare(mode: str, **o: Any) -> _Job:
    """Check every option (and load the encoders) before any file is touched."""
    if mode not in MODES:
        raise BatchError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    try:
        o["encoders"], o["encoder_weights"] = resolve_encoders(o["encoders"], o["encoder_weights"])
    except ValueError as e:
        raise BatchError(str(e)) from None
    encoders = tuple(str(e).strip() for e in o["encoders"])
    if not encoders or any(not e for e in encoders):
        raise BatchError(f"encoders must be a non-empty list of names, not {list(o['encoders'])!r}")
    weights = tuple(float(w) for w in o["encoder_weights"])
    if weights and len(weights) != len(encoders):
        raise BatchError(f"{len(weights)} encoder weights given for {len(encoders)} encoders; give one each")
    if any(w < 0 for w in weights) or (weights and sum(weights) <= 0):
        raise BatchError("encoder weights must be non-negative and not all zero")
    try:
        make_budget(o["intensity"], o["budget"], o["eps"])
    except ValueError as e:
        raise BatchError(str(e)) from None
    if o["speed"] not in SPEED:
        raise BatchError(f"speed must be one of {', '.join(SPEED)}, not {o['speed']!r}")
    if o["steps"] is not None and (not isinstance(o["steps"], int) or o["steps"] < 1):
        raise BatchError(f"steps must be a positive integer, not {o['steps']!r}")
    if not isinstance(o["tile"], int) or o["tile"] < MIN_SIDE:
        raise BatchError(f"tile must be an integer of at least {MIN_SIDE} px, not {o['tile']!r}")
    try:
        resolve_device(o["device"])
    except (ValueError, RuntimeError) as e:
        raise BatchError(str(e)) from None
    try:
        views = as_views(o["views"])
    except (TypeError, ValueError) as e:
        raise BatchError(str(e)) from None

    common: dict[str, Any] = dict(
        encoders=encoders,
        encoder_weights=weights,
        intensity=o["intensity"],
        budget=o["budget"],
        eps=o["eps"],
        speed=o["speed"],
        steps=o["steps"],
        seed=int(o["seed"]),
        tile=o["tile"],
        robust=bool(o["robust"]),  # part of the settings key: a robust rerun recomputes
        views=views,
    )
    if o["against"] is not None:  # the Settings key must match the one shade/cloak write
        prompt = o["prompt"] or (o["concept"] if mode == "shade" else None)
        common.update(against=str(o["against"]), objective=o["objective"], prompt=prompt)
    call: dict[str, Any] = dict(device=o["device"], weights_dir=o["weights_dir"])

    job = _Job(mode, common, call, concept=o["concept"], as_concept=o["as_concept"], style=o["style"])
    if mode == "cloak":
        if o["style_image"] is not None:
            job.style_image = str(_check_style_image(Path(o["style_image"])))
        elif o["style"] != "auto" and o["style"] not in STYLE_NAMES:
            raise BatchError(f"unknown style {o['style']!r}; choose one of {', '.join(STYLE_NAMES)}, or auto")
    if o["against"] is None:  # against a generator, the encoders only measure transfer, where present
        _load_encoders(job, o["weights_dir"])
    return job


def _choose_set_style(
    job: _Job, files: list[tuple[Path, Path]], weights_dir: Path | str | None, verbose: bool
) -> None:
    """``--style auto`` for a set: score every work's distance to each style, keep one style for all.

    Works that cannot be read are left out here; they fail later with their own message.
    """
    encoder = load_encoder(job.common["encoders"][0], weights_dir)
    seed = job.common["seed"]
    per_work = []
    for file, _ in files:
        try:
            per_work.append(style_distances(load_image(file).rgb[None], encoder, seed))
        except ImageInputError:
            continue
    if not per_work:
        return
    chosen, medians = set_style(per_work)
    job.style = chosen
    job.style_choice = {"auto": "set", "works": len(per_work), "median_rank": medians}
    if verbose:
        print(
            f"style for the whole set: {chosen} (auto: middling-to-far for most of the {len(per_work)} "
            "works; --style-per-image chooses per image)",
            flush=True,
        )


def _check_style_image(path: Path) -> Path:
    try:
        load_image(path)
    except ImageInputError as e:
        raise BatchError(f"style image {e}") from None
    return path.resolve()


def _load_encoders(job: _Job, weights_dir: Path | str | None) -> None:
    """Load (and cache) every encoder now: a missing weight file is one clear error, not N failures.

    ``WeightsNotFoundError`` and ``ChecksumError`` (a damaged file) are let through as they are: their
    messages say what to do. A file with no pinned hash is used, with a note that it is unverified.
    """
    names = list(job.common["encoders"])
    if job.mode == "cloak" and job.style_image is not None:
        names.append("flux2")
    try:
        loaded: list[Any] = [load_encoder(name, weights_dir) for name in dict.fromkeys(names)]
        if job.mode == "cloak" and job.style_image is not None:
            loaded.append(load_decoder("flux2", weights_dir))
    except ChecksumError:
        raise
    except ValueError as e:
        raise BatchError(str(e)) from None
    for model in loaded:
        if not getattr(model, "verified", False):
            where = getattr(model, "source", "") or model.name
            _err(f"note: {where} has no pinned checksum; it is used unverified, as your own file")


def _suffix(fmt: str) -> str:
    key = str(fmt).lower().lstrip(".")
    if key not in FORMATS:
        raise BatchError(f"format must be png, jpg or webp, not {fmt!r}")
    return FORMATS[key]


def _warn_lossy(suffix: str, quality: int) -> None:
    if suffix == ".jpg":
        _err(f"warning: {JPEG_LOSSY_WARNING}")
    elif suffix == ".webp" and quality < 100:
        _err(f"warning: {WEBP_LOSSY_WARNING}")


def _collect(inputs: Sequence[Path | str], out: Path, result: BatchResult) -> list[tuple[Path, Path]]:
    """Expand the inputs; a missing one is a failure, nothing at all to do is an error.

    Files met while walking a folder are left out when they are sfumato's own outputs: those inside
    the output folder (when it lies within an input folder) and those with a sidecar report, so a
    rerun over a folder that holds its results does not protect the results again.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise BatchError("no inputs given")
    present, files, seen = [], [], set()
    for item in inputs:
        try:
            found = collect_inputs([item], ignored=result.ignored)
        except ImageInputError as e:
            result.failed.append((e.path, str(e)))
            continue
        present.append(item)
        # Each input on its own: two that would land on the same output fail the later file only
        # (in _check_outputs), the same rule as for a.png beside a.jpg in one folder.
        for file, relative in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append((file, relative))
    explicit = {Path(i).resolve() for i in present if Path(i).is_file()}
    out_abs = out.resolve()
    roots = [Path(i).resolve() for i in present if Path(i).is_dir()]
    inner_out = any(out_abs != root and root in out_abs.parents for root in roots)
    kept = []
    for file, relative in files:
        absolute = file.resolve()
        if absolute not in explicit:
            if inner_out and out_abs in absolute.parents:
                continue
            if _is_our_output(file):
                continue
        kept.append((file, relative))
    if not kept:
        reasons = "; ".join(message for _, message in result.failed)
        where = ", ".join(str(i) for i in inputs)
        raise BatchError(f"no input images found in {where}" + (f" ({reasons})" if reasons else ""))
    return kept


def _is_our_output(file: Path) -> bool:
    return is_our_report(read_report(sidecar_path(file)))


def _header_size(path: Path) -> tuple[int, int]:
    """(width, height) as displayed, from the header alone (EXIF rotations swap the sides)."""
    with Image.open(path) as img:
        w, h = img.size
        try:
            orientation = img.getexif().get(_ORIENTATION_TAG, 1)
        except Exception:  # noqa: BLE001 - malformed EXIF: load_image ignores it too
            orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _collect_anchors(
    target_images: Path | str | Sequence[Path | str], result: BatchResult
) -> list[tuple[Path, tuple[int, int]]]:
    """The target images with their sizes; unreadable ones are reported and left out."""
    items = [target_images] if isinstance(target_images, (str, Path)) else list(target_images)
    try:
        files = collect_inputs(items)
    except ImageInputError as e:
        raise BatchError(f"target images: {e}") from None
    anchors = []
    for file, _ in files:
        try:
            size = _header_size(file)
        except Exception:  # noqa: BLE001 - let load_image explain what is wrong with the file
            try:
                size = load_image(file).size
            except ImageInputError as e:
                result.failed.append((file, f"target image {e}"))
                continue
            except Exception as e:  # noqa: BLE001
                result.failed.append((file, f"target image {file} cannot be read: {e}"))
                continue
        if min(size) < MIN_SIDE:
            result.failed.append(
                (file, f"target image {file} is {size[0]}x{size[1]}; it needs at least {MIN_SIDE} px a side")
            )
            continue
        anchors.append((file.resolve(), size))
    if not anchors:
        where = ", ".join(str(i) for i in items)
        raise BatchError(f"no usable target images in {where}")
    return anchors


# ------------------------------------------------------------------------------------------- running


class _Runner:
    def __init__(
        self,
        job: _Job,
        out: Path,
        suffix: str,
        quality: int,
        files: list[tuple[Path, Path]],
        forbidden_extra: list[Path],
        progress: bool,
        verbose: bool,
        result: BatchResult,
    ) -> None:
        self.job, self.out, self.suffix, self.quality = job, out, suffix, quality
        self.files, self.progress, self.verbose, self.result = files, progress, verbose, result
        self.forbidden = [f for f, _ in files] + forbidden_extra
        self.forbidden_paths = {p.resolve() for p in self.forbidden}
        self.forbidden_inodes = set()
        for p in self.forbidden:
            try:
                st = p.stat()
                self.forbidden_inodes.add((st.st_dev, st.st_ino))
            except OSError:
                continue
        self.owners: dict[Path, Path] = {}
        self.bar: Any = None

    def run(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(self.files, unit="image", disable=not self.progress, dynamic_ncols=True)
        try:
            for file, relative in self.bar:
                self.bar.set_postfix_str(relative.as_posix())
                try:
                    self._one(file, relative)
                except KeyboardInterrupt:
                    raise
                except ImageInputError as e:
                    message = str(e) if Path(e.path) == file else f"{file}: {e}"
                    self._fail(file, message)
                except OSError as e:
                    stop = folder_problem(e, self.out)
                    self._fail(
                        file, f"{file}: {e.strerror or e}" if stop else f"{file}: {type(e).__name__}: {e}"
                    )
                    if stop is not None:  # every later image would fail the same way, after its compute
                        self.result.stopped = stop
                        break
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                    self._fail(file, f"{file}: {type(e).__name__}: {e}")
        finally:
            self.bar.close()

    # -- one file

    def _one(self, file: Path, relative: Path) -> None:
        wanted = relative.with_suffix(self.suffix)
        output = self.out / safe_relative(wanted)
        if output != self.out / wanted:
            self._warn(
                f"note: {relative.as_posix()}: written as {output.relative_to(self.out).as_posix()!r}: "
                "its name holds a right-to-left override or other control, or a name Windows reserves"
            )
        side = sidecar_path(output)
        caption = output.with_suffix(".txt") if self.job.mode == "shade" else None
        self._check_outputs(file, output, side, caption)
        remove_leftovers(*(p for p in (output, side, caption) if p is not None))
        previous = self._previous_report(file, output, side)

        anchor = None
        if self.job.mode == "shade":
            size = self._source_size(file)
            key = f"{relative.as_posix()}:{self.job.common['seed']}"
            anchor = choose_anchor(size, self.job.anchors, key=key)
        key = self.job.settings(anchor).key()

        if previous is not None and _pair_is_complete(previous, key, output):
            if caption is not None and previous.get("caption_file") == caption.name and not caption.exists():
                atomic_write_text(caption, self.job.concept + "\n")
            self.result.skipped.append(BatchItem(file, output, previous))
            self._echo(f"{relative.as_posix()}: skipped (already protected with these settings)")
            return

        loaded = load_image(file)
        for note in loaded.notes:
            self._warn(f"note: {relative.as_posix()}: {note}")
        callback = self._inner_progress(relative, loaded.size, len(self.files))
        try:
            protected = self._protect(loaded, anchor, callback)
        finally:
            callback.close()  # type: ignore[attr-defined]
        data, warnings = encode_image(
            loaded, protected.pixels, output, quality=self.quality, forbidden=self.forbidden
        )
        doc = {"input": str(file), "output": str(output), **protected.report, "warnings": warnings}
        doc["output_sha256"] = digest_bytes(data)
        if self.job.style_choice is not None:
            doc["style_choice"] = self.job.style_choice
        write_caption = (
            caption is not None and bool(self.job.concept) and self._caption_is_ours(caption, previous)
        )
        if caption is not None:
            doc["caption_file"] = caption.name if write_caption else None
        # The report first, naming the bytes that follow: a kill between the two leaves a report whose
        # output_sha256 does not match the image beside it, which every reader checks (never a stale pair).
        atomic_write_text(side, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        atomic_write_bytes(output, data)
        if write_caption and caption is not None:
            atomic_write_text(caption, self.job.concept + "\n")
        self.result.done.append(BatchItem(file, output, doc))
        for w in warnings:
            if "lossy" not in w:  # the format's lossiness was announced once, before the batch
                self._warn(f"warning: {relative.as_posix()}: {w}")
        self._echo(_image_line(relative.as_posix(), protected.report))

    def _protect(self, loaded: LoadedImage, anchor: Path | None, callback: Any) -> Any:
        """shade or cloak on the image already decoded (decoding it twice held two copies at once)."""
        if self.job.mode == "shade":
            return shade(
                loaded,
                str(anchor),
                concept=self.job.concept,
                as_concept=self.job.as_concept,
                progress=callback,
                **self.job.common,
                **self.job.call,
            )
        return cloak(
            loaded,
            self.job.style,
            style_image=self.job.style_image,
            progress=callback,
            **self.job.common,
            **self.job.call,
        )

    def _previous_report(self, file: Path, output: Path, side: Path) -> dict[str, Any] | None:
        """Our earlier report of this output, if any; an image or report there that sfumato did not
        write is kept, and this file fails saying so."""
        previous = read_report(side)
        if side.exists() and not is_our_report(previous):
            raise ImageInputError(
                file,
                f"would be written beside {side}, which sfumato did not write; kept it "
                "(move it away or choose another output folder with -o)",
            )
        if previous is None and output.exists():
            raise ImageInputError(
                file,
                f"would replace {output}, which sfumato did not write (it has no report {side.name}); "
                "kept it (move it away or choose another output folder with -o)",
            )
        return previous

    def _caption_is_ours(self, caption: Path, previous: dict[str, Any] | None) -> bool:
        """A caption may be written if none is there, or if our own report says we wrote it; the user's
        own caption (the usual dataset layout: a.jpg beside a.txt) is kept, and the user told."""
        if not caption.exists():
            return True
        if previous is not None:
            if "caption_file" in previous:
                if previous["caption_file"] == caption.name:
                    return True
            elif _read_text(caption) == f"{previous.get('caption')}\n":  # reports from before caption_file
                return True
        message = f"kept {caption}: sfumato did not write it, so it stays the caption of {caption.stem}"
        self.result.kept.append(message)
        self._warn(f"note: {message}")
        return False

    def _source_size(self, file: Path) -> tuple[int, int]:
        try:
            return _header_size(file)
        except Exception:  # noqa: BLE001 - load_image raises the clear ImageInputError
            return load_image(file).size

    def _check_outputs(self, file: Path, output: Path, *others: Path | None) -> None:
        """Refuse, before any work, outputs that would land on an input or on another output."""
        for target in (output, *others):
            if target is None:
                continue
            if self._is_forbidden(target):
                raise ImageInputError(
                    file,
                    f"would be written to {target}, which is an input file; sfumato never overwrites "
                    "its inputs (choose another output folder with -o)",
                )
        owner = self.owners.setdefault(output.resolve(), file)
        if owner != file:
            raise ImageInputError(file, f"would be written to the same output {output} as {owner}")

    def _is_forbidden(self, target: Path) -> bool:
        if target.resolve() in self.forbidden_paths:
            return True
        try:
            st = target.stat()
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in self.forbidden_inodes

    def _inner_progress(self, relative: Path, size: tuple[int, int], n_files: int) -> Any:
        """A step callback for shade/cloak: an inner bar for a single or a large image, else nothing."""
        show = self.progress and (n_files == 1 or size[0] * size[1] >= LARGE_PIXELS)
        state: dict[str, Any] = {"bar": None}

        def callback(done: int, total: int) -> None:
            if not show:
                return
            bar = state["bar"]
            if bar is None:
                from tqdm.auto import tqdm

                bar = state["bar"] = tqdm(
                    total=total, desc=relative.name, unit="step", leave=False, dynamic_ncols=True
                )
            bar.total = total
            bar.n = done
            bar.refresh()

        def close() -> None:
            if state["bar"] is not None:
                state["bar"].close()

        callback.close = close  # type: ignore[attr-defined]
        return callback

    # -- output

    def _fail(self, file: Path, message: str) -> None:
        self.result.failed.append((file, message))
        if self.verbose:
            self._warn(f"failed: {message}")

    def _echo(self, line: str) -> None:
        if self.verbose:
            _write(line, sys.stdout, self.progress)

    def _warn(self, line: str) -> None:
        _write(line, sys.stderr, self.progress)


def _write(line: str, stream: Any, bars: bool) -> None:
    if bars:
        from tqdm.auto import tqdm

        tqdm.write(line, file=stream)
    else:
        print(line, file=stream, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _pair_is_complete(report: dict[str, Any], key: str, output: Path) -> bool:
    """The output was made with these settings and is the very image its report describes."""
    if report.get("settings_key") != key or not output.is_file():
        return False
    recorded = report.get("output_sha256")
    return isinstance(recorded, str) and recorded == digest_file(output)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _pct(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "?"


def _image_line(name: str, report: dict[str, Any]) -> str:
    """``cat.png: PSNR 41.2 dB, moved flux2 34% (sana 9% transfer)``."""
    effect = report.get("effect", {})
    psnr = effect.get("quality", {}).get("psnr_db")
    latents = effect.get("latents", {})
    attacked = [f"{n} {_pct(f.get('fraction_moved'))}" for n, f in latents.items() if f.get("attacked")]
    transfer = [f"{n} {_pct(f.get('fraction_moved'))}" for n, f in latents.items() if not f.get("attacked")]
    line = f"{name}: PSNR {psnr:.1f} dB" if isinstance(psnr, (int, float)) else f"{name}: PSNR ?"
    if attacked:
        line += ", moved " + ", ".join(attacked)
    if transfer:
        line += " (" + ", ".join(transfer) + " transfer)"
    return line


# ------------------------------------------------------------------------------------------- summary


def _relative_name(out: Path, output: Path) -> str:
    try:
        return output.relative_to(out).as_posix()
    except ValueError:
        return str(output)


def summary_rows(result: BatchResult) -> list[dict[str, object]]:
    rows = []
    for status, items in (("protected", result.done), ("skipped", result.skipped)):
        for item in items:
            row = summary_row(_relative_name(result.out_dir, item.output), item.report)
            rows.append({"image": row.pop("image"), "status": status, **row})
    rows.sort(key=lambda r: str(r["image"]))
    return rows


_SUMMARY_MARKS = {SUMMARY_MD: "# sfumato batch summary", SUMMARY_CSV: "image,status"}


def _write_summary(out: Path, result: BatchResult) -> None:
    """summary.md and summary.csv; a file of that name that sfumato did not write is kept, and the
    summary goes to sfumato-summary.md/.csv instead (skipped if that name is taken too)."""
    rows = summary_rows(result)
    md = f"{_SUMMARY_MARKS[SUMMARY_MD]}\n\n{result.summary_line()}\n\n{markdown_table(rows)}"
    if result.stopped:
        md += f"\n{result.stopped}\n"
    if result.failed:
        md += "\n## Failed\n\n" + "".join(f"- {message}\n" for _, message in result.failed)
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r)) or ["image", "status"]
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for name, text in ((SUMMARY_MD, md), (SUMMARY_CSV, buf.getvalue())):
        target = _summary_target(out / name, _SUMMARY_MARKS[name], result)
        if target is None:
            continue
        try:
            remove_leftovers(target)
            atomic_write_text(target, text)
        except OSError as e:
            _err(f"warning: could not write the summary {target}: {e.strerror or e}")


def _summary_target(path: Path, mark: str, result: BatchResult) -> Path | None:
    """``path`` if it is free or ours (starts with our header), else the sfumato- name beside it."""
    for candidate in (path, path.with_name(f"sfumato-{path.name}")):
        head = _read_head(candidate)
        if head is None or head.startswith(mark):
            if candidate != path:
                message = f"kept {path}: sfumato did not write it; the summary is in {candidate.name}"
                result.kept.append(message)
                _err(f"note: {message}")
            return candidate
    message = (
        f"kept {path} and {path.with_name('sfumato-' + path.name).name}: sfumato wrote neither; no summary"
    )
    result.kept.append(message)
    _err(f"note: {message}")
    return None


def _read_head(path: Path) -> str | None:
    """The first bytes of a file as text, or None if there is no file."""
    try:
        with path.open("rb") as fh:
            return fh.read(64).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ""


def _print_ignored(result: BatchResult) -> None:
    """Name what a folder held that is not protected, so nothing is left out silently."""
    if not result.ignored:
        return
    n = len(result.ignored)
    lines = [f"{n} file{'s' if n != 1 else ''} ignored:"] + [
        f"  {path}: {why}" for path, why in result.ignored
    ]
    _err("\n".join(lines))


def _print_failures(result: BatchResult) -> None:
    if not result.failed:
        return
    n = len(result.failed)
    lines = [f"{n} file{'s' if n != 1 else ''} failed:"] + [f"  {message}" for _, message in result.failed]
    _err("\n".join(lines))
