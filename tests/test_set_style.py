"""Issue 23, item 5: ``--style auto`` keeps one target style for a set; per image only when asked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import photo

from sfumato.batch import run_batch
from sfumato.cli import main
from sfumato.inspect import sidecar_path
from sfumato.targets import AUTO_QUANTILE, set_style

FAST = dict(steps=1, speed="fast", device="cpu", progress=False, verbose=False)


def test_set_style_is_the_middling_to_far_style_for_most_works():
    near_to_far = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    reversed_ = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    chosen, medians = set_style([near_to_far])
    assert chosen == "c" and abs(medians["c"] - AUTO_QUANTILE) < 0.01  # one work: its own choice
    # two works agree on c, one would have chosen b alone: the set keeps c
    assert set_style([near_to_far, near_to_far, reversed_])[0] == "c"


def test_auto_keeps_one_style_for_the_folder_and_records_it(tmp_path: Path, capsys, weights_dir):
    src = tmp_path / "in"
    src.mkdir()
    for name, pattern in (("a.png", "golden_retriever"), ("b.png", "tabby"), ("c.png", "goldfish")):
        photo(pattern).save(src / name)
    result = run_batch([src], tmp_path / "out", "cloak", style="auto", **FAST)
    docs = [json.loads(sidecar_path(i.output).read_text()) for i in result.done]
    assert len(docs) == 3 and len({d["style"] for d in docs}) == 1
    assert all(d["style_choice"]["auto"] == "set" and d["style_choice"]["works"] == 3 for d in docs)
    assert all(d["settings"]["style"] == docs[0]["style"] for d in docs)

    out = tmp_path / "each"
    assert (
        main(
            [
                "cloak",
                str(src),
                "-o",
                str(out),
                "--style-per-image",
                "--quiet",
                "--steps",
                "1",
                "--speed",
                "fast",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    each = [json.loads(p.read_text()) for p in sorted(out.glob("*.png.json"))]
    assert len(each) == 3 and all("style_choice" not in d and "style_distances" in d for d in each)
