"""Shared pieces of the benchmark scripts: the photos, machine facts, and writing the results.

Every script writes ``results/<name>.json`` (figures plus the settings that produced them) and
``results/<name>.md`` (tables regenerated from that JSON), and refreshes its section of
``benchmarks/README.md``. ``--quick`` runs write under ``results/quick/`` and leave the README alone.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sfumato.imageio import load_image
from sfumato.targets import fit_to

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results"
README = ROOT / "README.md"
DATA = Path(os.environ.get("SFUMATO_BENCH_DATA", REPO.parent / "shared/data/imagenet-samples"))
WEIGHTS = Path(os.environ.get("SFUMATO_BENCH_WEIGHTS", REPO.parent / "shared/weights/taesd"))
CIFAR = REPO.parent / "shared" / "data" / "cifar10.zip"

# Sources (dogs) and anchors (cats), in the order pairs are formed: pair i is DOGS[i] -> CATS[i % 3].
# The sample set holds only three domestic-cat classes (no Persian or Egyptian cat), so they cycle.
DOGS = (
    "golden_retriever",
    "Siberian_husky",
    "Border_terrier",
    "Labrador_retriever",
    "German_shepherd",
    "cocker_spaniel",
    "Yorkshire_terrier",
    "collie",
)
CATS = ("tabby", "tiger_cat", "Siamese_cat")


def say(*args: object) -> None:
    print(*args, flush=True)


def photo_path(cls: str) -> Path:
    found = sorted(DATA.glob(f"n*_{cls}.jpg"))
    if not found:
        raise FileNotFoundError(f"no photo of class {cls!r} in {DATA}")
    return found[0]


def load_photo(cls: str, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """A sample photo as (1, 3, H, W) in [0, 1]; cover-resized and centre-cropped when a size is given."""
    rgb = load_image(photo_path(cls)).rgb[None]
    if height is None or width is None:
        return rgb
    return fit_to(rgb, height, width)


def pairs(n: int) -> list[tuple[str, str]]:
    if n > len(DOGS):
        raise ValueError(f"at most {len(DOGS)} pairs")
    return [(DOGS[i], CATS[i % len(CATS)]) for i in range(n)]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2 / AVX512: whether bf16 is fast
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def pm(values: Sequence[float], digits: int = 3) -> str:
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def out_dir(quick: bool) -> Path:
    d = RESULTS / "quick" if quick else RESULTS
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def new_record(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The start of a results file: the benchmark, when and where it ran, its settings, no runs yet."""
    return {
        "benchmark": name,
        "started": now(),
        "loadavg_start": loadavg(),
        "machine": machine(),
        "settings": settings,
        "runs": [],
    }


def run_or_load(path: Path, render_only: bool, run: Any) -> dict[str, Any]:
    """The saved results (``--render-only``) or a fresh ``run()``, saved to ``path``."""
    if render_only:
        return read_json(path)
    data = run()
    write_json(path, data)
    return data


def lab_args(ap: Any) -> Any:
    """Parse a lab benchmark's arguments, with the options they all share (the CIFAR-10 zip, torch
    threads, ``--render-only``), and set the thread count."""
    ap.add_argument("--cifar", type=Path, default=CIFAR, help="the CIFAR-10 zip")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the saved JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    return args


def run_and_write(name: str, render_only: bool, run: Any, render: Any, quick: bool = False) -> None:
    """Run (or load, ``render_only``) a benchmark, then write its JSON, Markdown and README section."""
    path = out_dir(quick) / f"{name}.json"
    data = run_or_load(path, render_only, run)
    md = write_markdown(name, render(data), quick)
    say(f"wrote {path} and {md}")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def write_markdown(name: str, body: str, quick: bool) -> Path:
    """Write ``results/<name>.md`` and, for full runs, the marked section of the README."""
    path = out_dir(quick) / f"{name}.md"
    path.write_text(body)
    if not quick and README.exists():
        start, end = f"<!-- results:{name} start -->", f"<!-- results:{name} end -->"
        text = README.read_text()
        if start in text and end in text:
            # One heading level down (the README's own "## Results" holds them), links from benchmarks/.
            lines = ["#" + ln if ln.startswith("#") else ln for ln in body.strip().splitlines()]
            demoted = "\n".join(lines).replace(f"]({name}.png)", f"](results/{name}.png)")
            section = f"{start}\n{demoted}\n{end}"
            text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: section, text, flags=re.S)
            README.write_text(text)
    return path
