"""``sfumato purify``: apply countermeasures to image files, as a scraper would before training.

Reuses the batch tool's file handling (:mod:`sfumato.imageio`): inputs are collected the same way,
every bad file gets the same one-line explanation and the batch carries on, outputs are written
atomically and never over an input. Outputs are PNG (lossless), so what is saved is exactly the
countermeasure's result: ``OUT/<relative path>.png`` for one method, ``OUT/<method>/<relative
path>.png`` for several.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sfumato.countermeasures import COUNTERMEASURES
from sfumato.imageio import ImageInputError, collect_inputs, load_image, save_image


class PurifyError(Exception):
    """A problem that stops the run before it starts (unknown method, nothing to do); one line."""


@dataclass
class PurifyResult:
    done: list[tuple[Path, str, Path]] = field(default_factory=list)  # (input, method, output)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, message)
    out_dir: Path = Path(".")

    def summary_line(self) -> str:
        return f"{len(self.done)} written, {len(self.failed)} failed; output in {self.out_dir}"


def resolve_methods(methods: Sequence[str]) -> list[str]:
    """Expand ``all`` and comma-separated lists; refuse unknown names with the list of known ones."""
    names: list[str] = []
    for item in methods:
        for name in (n.strip() for n in str(item).split(",")):
            if not name:
                continue
            if name == "all":
                names.extend(COUNTERMEASURES)
            elif name in COUNTERMEASURES:
                names.append(name)
            else:
                raise PurifyError(
                    f"unknown method {name!r}; choose from {', '.join(COUNTERMEASURES)} (or all)"
                )
    if not names:
        raise PurifyError("no method given")
    return list(dict.fromkeys(names))


def _collect(inputs: Sequence[Path | str], out: Path, result: PurifyResult) -> list[tuple[Path, Path]]:
    """Files to purify; a missing input is a failure, and files already inside ``out`` are left out
    when ``out`` lies within an input folder (so a rerun does not purify its own outputs)."""
    present = []
    for item in inputs:
        try:
            collect_inputs([item])
        except ImageInputError as e:
            result.failed.append((e.path, str(e)))
            continue
        present.append(item)
    try:
        files = collect_inputs(present) if present else []
    except ImageInputError as e:
        raise PurifyError(str(e)) from None
    out_abs = out.resolve()
    explicit = {Path(i).resolve() for i in present if Path(i).is_file()}
    roots = [Path(i).resolve() for i in present if Path(i).is_dir()]
    inner_out = any(out_abs != root and root in out_abs.parents for root in roots)
    kept = [
        (f, rel)
        for f, rel in files
        if f.resolve() in explicit or not (inner_out and out_abs in f.resolve().parents)
    ]
    if not kept:
        reasons = "; ".join(message for _, message in result.failed)
        raise PurifyError(
            f"no input images found in {', '.join(map(str, inputs))}" + (f" ({reasons})" if reasons else "")
        )
    return kept


def purify_files(
    inputs: Sequence[Path | str],
    out_dir: Path | str,
    methods: Sequence[str],
    *,
    seed: int = 0,
    weights_dir: Path | str | None = None,
    verbose: bool = True,
) -> PurifyResult:
    """Apply each countermeasure in ``methods`` to every image of ``inputs`` (files or folders).

    Raises :class:`PurifyError` before any work for an unknown method or when there is nothing to do;
    per-file problems are collected in ``result.failed`` (and printed to stderr) and the run goes on.
    """
    names = resolve_methods(methods)
    out = Path(out_dir)
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise PurifyError("no inputs given")
    if any(COUNTERMEASURES[n].autoencoder for n in names):
        # Load once now: missing weights are one clear error (WeightsNotFoundError), not N failures.
        from sfumato.encoders import load_decoder, load_encoder

        load_encoder("flux2", weights_dir)
        load_decoder("flux2", weights_dir)
    result = PurifyResult(out_dir=out)
    files = _collect(inputs, out, result)
    forbidden = [f for f, _ in files]
    owners: dict[Path, Path] = {}
    for file, relative in files:
        try:
            loaded = load_image(file)
        except ImageInputError as e:
            _fail(result, file, str(e))
            continue
        for name in names:
            output = (out / name if len(names) > 1 else out) / relative.with_suffix(".png")
            owner = owners.setdefault(output.resolve(), file)
            if owner != file:
                _fail(result, file, f"{file} would be written to the same output {output} as {owner}")
                continue
            started = time.perf_counter()
            try:
                purified = COUNTERMEASURES[name](loaded.rgb, seed=seed, weights_dir=weights_dir)
                save_image(loaded, purified, output, forbidden=forbidden)
            except ImageInputError as e:
                _fail(result, file, str(e) if Path(e.path) == file else f"{file}: {e}")
                continue
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                _fail(result, file, f"{file}: {name}: {type(e).__name__}: {e}")
                continue
            result.done.append((file, name, output))
            if verbose:
                print(
                    f"{relative.as_posix()}: {name} -> {output} ({time.perf_counter() - started:.1f} s)",
                    flush=True,
                )
    if result.failed:
        n = len(result.failed)
        lines = [f"{n} file{'s' if n != 1 else ''} failed:"] + [f"  {m}" for _, m in result.failed]
        print("\n".join(lines), file=sys.stderr, flush=True)
    return result


def _fail(result: PurifyResult, file: Path, message: str) -> None:
    result.failed.append((file, message))
