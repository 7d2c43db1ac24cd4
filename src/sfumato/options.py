"""Command-line option types shared by ``sfumato`` and ``sfumato lab``, so both read a flag alike.

Kept below both command modules: the lab's CLI is registered by the main one, so neither may import the
other for a shared flag.
"""

from __future__ import annotations

import argparse

MAX_EPS_255 = 0.25 * 255  # the budget's upper bound on eps, in 0..255 units


def eps_option(text: str) -> float:
    """``--eps 8`` means 8/255."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in 0..255 units (e.g. 8), not {text!r}") from None
    if not 0 < value <= MAX_EPS_255:
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_EPS_255:g} (0..255 units, e.g. 8 for 8/255), not {text}"
        )
    return value / 255
