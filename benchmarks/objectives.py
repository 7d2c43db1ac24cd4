"""Cost of each objective (issue 21): seconds per work on this CPU, one thread, at 64 and 128 px.

Per-work objectives (``latent``, ``advdm``, ``sds-``, ``targeted``) run through the public API,
``sfumato.cloak(..., against=GENERATOR, objective=...)`` at the ``default`` speed preset, and the time
is the report's ``seconds`` (the protection itself, not the measuring); the folder-level schemes
(``aspl``, ``metacloak``) run :func:`sfumato.protect_works` on ``--works`` works at their default
schedules, and the time is the whole run divided by the works. The goal (issue 21): folder-level
<= 60 s per 128 px work, per-work objectives <= 3x today's default (``benchmarks/speed.py``).

    python benchmarks/objectives.py --against lab-models/base    # a train-base folder, or a diffusers folder
    python benchmarks/objectives.py --tiny                        # tiny random generators (plumbing, quick)

``--tiny`` builds the tests' tiny random lab and diffusers generators (tests/tiny_generators.py): its
seconds say what the machinery costs around the networks, not what a real generator costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import _common as C

NAME = "objectives"
IMAGE = ("latent", "advdm", "sds-", "targeted")
FOLDER = ("aspl", "metacloak")
PROMPT = "a painting by vincent van gogh"


def _works(n: int, size: int) -> list[torch.Tensor]:
    """Van Gogh paintings when the shared data has them, else smooth random images."""
    files = sorted(C.REPO.parent.joinpath("shared/data/vangogh").glob("*.png"))[:n]
    if len(files) == n:
        from sfumato.imageio import load_image
        from sfumato.targets import fit_to

        return [fit_to(load_image(f).rgb[None], size, size)[0] for f in files]
    g = torch.Generator().manual_seed(0)
    small = [torch.rand(1, 3, size // 8, size // 8, generator=g) for _ in range(n)]
    return [torch.nn.functional.interpolate(s, size=(size, size), mode="bilinear")[0] for s in small]


def _generators(args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    if not args.tiny:
        return {Path(args.against).name: str(args.against)}
    sys.path.insert(0, str(C.REPO))
    from tests.tiny_generators import tiny_pipeline

    return {"tiny-diffusers": str(tiny_pipeline(tmp / "tiny-sd"))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import sfumato
    from sfumato.styles import STYLE_NAMES
    from sfumato.works import protect_works

    record = C.new_record(NAME, {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    with tempfile.TemporaryDirectory() as tmp:
        for label, against in _generators(args, Path(tmp)).items():
            for size in args.sizes:
                works = _works(args.works, size)
                for objective in args.objectives:
                    started = time.perf_counter()
                    if objective in FOLDER:
                        out = protect_works(
                            works, against=against, objective=objective, prompt=PROMPT, device="cpu"
                        )
                        seconds = (time.perf_counter() - started) / len(works)
                    else:
                        out = [
                            sfumato.cloak(
                                works[0], STYLE_NAMES[0], against=against, objective=objective,
                                prompt=PROMPT, device="cpu",
                            )
                        ]  # fmt: skip
                        seconds = out[0].report["seconds"]
                    effect = out[0].report["against"]["denoising_loss"]
                    row = {
                        "generator": label,
                        "size": size,
                        "objective": objective,
                        "seconds_per_work": round(seconds, 3),
                        "denoising_loss_before": effect["before"],
                        "denoising_loss_after": effect["after"],
                    }
                    record["runs"].append(row)
                    C.say(row)
    record["loadavg_end"] = C.loadavg()
    return record


def render(data: dict[str, Any]) -> str:
    rows = [
        [r["generator"], r["size"], r["objective"], r["seconds_per_work"], r["denoising_loss_before"],
         r["denoising_loss_after"]]
        for r in data.get("runs", [])
    ]  # fmt: skip
    header = ["generator", "px", "objective", "s / work", "denoising loss before", "after"]
    threads = data.get("settings", {}).get("threads")
    note = f"CPU, {threads} thread(s); load average at the start {data.get('loadavg_start')}.\n\n"
    return f"## Objectives: cost per work\n\n{note}" + C.table(header, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", type=Path, default=None, help="a train-base folder or a diffusers folder")
    ap.add_argument("--tiny", action="store_true", help="tiny random generators (results under quick/)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--objectives", nargs="+", default=[*IMAGE, *FOLDER], choices=[*IMAGE, *FOLDER])
    ap.add_argument("--works", type=int, default=4, help="works per folder-level run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    if not args.tiny and args.against is None and not args.render_only:
        ap.error("give --against GENERATOR, or --tiny")
    torch.set_num_threads(args.threads)
    C.run_and_write(NAME, args.render_only, lambda: run(args), render, quick=args.tiny)


if __name__ == "__main__":
    main()
