"""Issue 23, item 6 (engine): reports name targets without paths; output names are safe anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import photo

from sfumato.batch import run_batch
from sfumato.inspect import sidecar_path
from sfumato.names import safe_name, safe_relative

FAST = dict(steps=1, speed="fast", device="cpu", progress=False, verbose=False)


@pytest.mark.parametrize(
    "name, safe",
    [
        ("con.png", "con_.png"),
        ("NUL", "NUL_"),
        ("Com1.tar.png", "Com1_.tar.png"),
        ("lpt9.png", "lpt9_.png"),
        ("com10.png", "com10.png"),
        ("cat\u202egnp.exe.png", "cat_gnp.exe.png"),
        ("a\u2066b\u2069.png", "a_b_.png"),
        ('what?"now".png', "what__now_.png"),
        ("dots.", "dots_"),
        ("normal name.png", "normal name.png"),
    ],
)
def test_safe_name(name, safe):
    assert safe_name(name) == safe


def test_safe_relative_keeps_folders():
    assert safe_relative(Path("aux") / "x.png") == Path("aux_") / "x.png"


def test_outputs_get_safe_names_and_reports_carry_no_paths(tmp_path, capsys, weights_dir):
    src, cats = tmp_path / "in", tmp_path / "private" / "cats"
    src.mkdir()
    cats.mkdir(parents=True)
    photo("golden_retriever").save(src / "con.png")
    photo("Labrador_retriever").save(src / "cat\u202egnp.exe.png")
    photo("tabby").save(cats / "tabby.jpg")
    out = tmp_path / "out"
    result = run_batch([src], out, "shade", concept="dog", as_concept="cat", target_images=cats, **FAST)
    assert sorted(i.output.name for i in result.done) == ["cat_gnp.exe.png", "con_.png"]
    assert (out / "con_.txt").read_text() == "dog\n"
    assert "written as 'con_.png'" in capsys.readouterr().err
    for item in result.done:
        doc = json.loads(sidecar_path(item.output).read_text())
        assert doc["settings"]["target_name"] == "tabby.jpg" and len(doc["settings"]["target_sha256"]) == 16
        assert str(cats) not in json.dumps(doc["settings"]) and "private" not in json.dumps(doc["settings"])
