"""Memory and time of the built-in target styles on large pictures, rendered in bands against whole.

Each style renders an 8-bit photo at two sizes, each run in a fresh process with one thread; the peak
memory it needs beyond the picture (Linux: the peak reset just before the call) and the seconds, once in
bands of about a megapixel (what sfumato does) and once as one band (the whole picture at once, as the
styles did before). The growth per added megapixel between the two sizes says whether memory is flat in
the picture's size; the difference between the two renderings says what the bands change.

    python benchmarks/style_memory.py                 # 1600 and 3200 px, all styles (about 5 minutes)
    python benchmarks/style_memory.py --quick         # 800 and 1200 px
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import _common as C

NAME = "style_memory"


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    raise OSError(f"no {key} in /proc/self/status")


def child(style: str, picture: Path, mode: str, out: Path) -> None:
    """One rendering in this (fresh) process: prints its peak growth (MB) and seconds as JSON."""
    import torch

    import sfumato.styles as styles

    torch.set_num_threads(1)
    if mode == "whole":
        styles._BAND_PIXELS = 1 << 40
    pixels = torch.from_numpy(np.load(picture)).permute(2, 0, 1)
    styles.render_style(style, pixels[:, :300, :300].contiguous())  # warm up
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    start = _status("VmRSS")
    t0 = time.perf_counter()
    result = styles.render_style(style, pixels)
    seconds = time.perf_counter() - t0
    grown = _status("VmHWM") - start
    np.save(out, result.numpy())
    print(json.dumps({"mb": grown, "seconds": round(seconds, 3)}))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from PIL import Image

    from sfumato.styles import STYLE_NAMES

    sizes = (800, 1200) if args.quick else tuple(args.sizes)
    styles = args.styles or list(STYLE_NAMES)
    data = C.new_record(NAME, {"sizes": sizes, "styles": styles, "photo": C.photo_path(args.photo).name})
    work = Path(tempfile.mkdtemp(prefix="sfumato-styles-"))
    with Image.open(C.photo_path(args.photo)) as img:
        for side in sizes:
            np.save(work / f"{side}.npy", np.asarray(img.convert("RGB").resize((side, side), Image.BICUBIC)))
    for style in styles:
        for side in sizes:
            record: dict[str, Any] = {"style": style, "side": side}
            for mode in ("bands", "whole"):
                out = work / f"{style}-{side}-{mode}.npy"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", style, str(work / f"{side}.npy"), mode, str(out)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                record[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            a = np.load(work / f"{style}-{side}-bands.npy").astype(np.int16)
            b = np.load(work / f"{style}-{side}-whole.npy").astype(np.int16)
            gap = np.abs(a - b)
            record["difference"] = {
                "mean_levels": round(float(gap.mean()), 4),
                "max_levels": int(gap.max()),
                "share_over_2_levels": round(float((gap > 2).mean()), 6),
            }
            data["runs"].append(record)
            C.say(
                f"  {style} {side}px: bands {record['bands']['mb']} MB {record['bands']['seconds']} s, "
                f"whole {record['whole']['mb']} MB {record['whole']['seconds']} s, {record['difference']}"
            )
    data["finished"] = C.now()
    return data


def render(data: dict[str, Any]) -> str:
    small, large = data["settings"]["sizes"][0], data["settings"]["sizes"][-1]
    added = (large**2 - small**2) / 1e6
    rows = []
    for style in data["settings"]["styles"]:
        by = {r["side"]: r for r in data["runs"] if r["style"] == style}
        if small not in by or large not in by:
            continue
        lo, hi = by[small], by[large]
        rows.append(
            [
                style,
                f"{(hi['bands']['mb'] - lo['bands']['mb']) / added:.1f}",
                f"{(hi['whole']['mb'] - lo['whole']['mb']) / added:.1f}",
                f"{hi['bands']['mb']} / {hi['whole']['mb']}",
                f"{hi['bands']['seconds']:.2f} / {hi['whole']['seconds']:.2f}",
                f"{hi['difference']['mean_levels']:.3f}",
                f"{hi['difference']['max_levels']}",
                f"{100 * hi['difference']['share_over_2_levels']:.3f}",
            ]
        )
    m = data["machine"]
    return "\n".join(
        [
            "## Target styles on large pictures: bands against the whole picture\n",
            f"{m['cpu']} ({m['cpu_count']} cores, one thread), photo {data['settings']['photo']} at {small} "
            f"and {large} px square. Memory: the peak beyond the 8-bit picture, MB; growth per megapixel "
            f"added between the two sizes. Differences of the banded rendering from the whole one at "
            f"{large} px, in 8-bit levels.\n",
            C.table(
                [
                    "style",
                    "bands MB/MP",
                    "whole MB/MP",
                    f"MB at {large} px (bands / whole)",
                    "seconds (bands / whole)",
                    "mean diff",
                    "max diff",
                    "% pixels > 2 levels",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs=2, default=[1600, 3200])
    ap.add_argument("--styles", nargs="*", default=None)
    ap.add_argument("--photo", default="palace")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    C.run_and_write(NAME, args.render_only, lambda: run(args), render, quick=args.quick)


if __name__ == "__main__":
    main()
