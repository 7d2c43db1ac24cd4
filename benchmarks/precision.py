"""bf16 autocast against fp32 on this CPU: why sfumato uses bf16 only where the CPU makes it fast.

Times, in one process with one torch thread, the two operations the engine and the lab spend their time
in, with and without bf16 autocast: one optimiser pass (forward and backward) of each default encoder
(tiny FLUX.2 and Sana) on a 256 px photo, and the lab's decoding of 40 latents to 64 px images. Also
records what oneDNN reports (bf16 kernels or not) and what :mod:`sfumato.encoders.precision` picks here.

    python benchmarks/precision.py          # 3 fp32 and 1 bf16 repetitions (a few minutes without AVX-512)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

import _common as C

NAME = "precision"


def timed(fn: Callable[[], None], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(round(time.perf_counter() - t0, 3))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sfumato.encoders import load_decoder, load_encoder
    from sfumato.encoders.precision import cpu_bf16, precision

    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = None
    data = C.new_record(
        NAME,
        {
            "size": args.size,
            "decode_latents": args.latents,
            "reps": {"fp32": args.reps, "bf16": args.bf16_reps},
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_bf16": onednn_bf16,
            "chosen": precision(),
            "chosen_bf16": cpu_bf16(),
        },
    )
    photo = C.load_photo(C.DOGS[0], args.size, args.size)
    for name in ("flux2", "sana"):
        encoder = load_encoder(name, C.WEIGHTS)

        def step(bf16: bool, encoder: Any = encoder) -> None:
            x = photo.clone().requires_grad_(True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                z = encoder(x)
            z.float().square().mean().backward()

        step(False)  # warm-up
        for label, bf16, reps in (("fp32", False, args.reps), ("bf16", True, args.bf16_reps)):
            seconds = timed(lambda b=bf16: step(b), reps)
            data["runs"].append(
                {"operation": f"{name} encoder pass + backward", "precision": label, "seconds": seconds}
            )
            C.say(f"  {name} encoder pass+backward {label}: {seconds} s")
    decoder = load_decoder("flux2", C.WEIGHTS)
    z = torch.randn(args.latents, 32, 8, 8, generator=torch.Generator().manual_seed(0))

    def decode(bf16: bool) -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            decoder(z).float()

    for label, bf16, reps in (("fp32", False, args.reps), ("bf16", True, args.bf16_reps)):
        seconds = timed(lambda b=bf16: decode(b), reps)
        data["runs"].append(
            {"operation": f"flux2 decode {args.latents} latents", "precision": label, "seconds": seconds}
        )
        C.say(f"  decode {label}: {seconds} s")
    data["finished"] = C.now()
    return data


def render(data: dict[str, Any]) -> str:
    s, m = data["settings"], data["machine"]
    ops = list(dict.fromkeys(r["operation"] for r in data["runs"]))
    rows = []
    for op in ops:
        by = {r["precision"]: r["seconds"] for r in data["runs"] if r["operation"] == op}
        fp32, bf16 = min(by["fp32"]), min(by["bf16"])
        rows.append([op, f"{fp32:.2f}", f"{bf16:.1f}", f"{bf16 / fp32:.0f}x"])
    return "\n".join(
        [
            "## Precision: bf16 autocast against fp32\n",
            f"{m['cpu']} ({m['cpu_count']} cores, one torch thread), PyTorch {m['torch']}: CPU capability "
            f"{s['cpu_capability']}, oneDNN bf16 kernels: {s['onednn_bf16']}; sfumato chooses "
            f"**{s['chosen']}** here. Encoder passes on a {s['size']} px photo; best of "
            f"{s['reps']['fp32']} (fp32) and {s['reps']['bf16']} (bf16) repetitions, seconds.\n",
            C.table(["operation", "fp32 s", "bf16 s", "bf16 / fp32"], rows),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--latents", type=int, default=40)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bf16-reps", type=int, default=1)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    C.run_and_write(NAME, args.render_only, lambda: run(args), render)


if __name__ == "__main__":
    main()
