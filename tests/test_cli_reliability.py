"""Issue 23, finding 7 on the command line: Ctrl-C while starting, and ``inspect`` without a report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from tests.conftest import photo

from sfumato import cli
from sfumato.batch import run_batch
from sfumato.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["cloak", "x.png"]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "sfumato: error: interrupted; finished outputs are kept, and a rerun continues where this one stopped"
    ]


def test_importing_the_command_line_leaves_torch_for_later():
    """The console script imports sfumato.cli before main() runs: a Ctrl-C there had no guard."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    code = "import sys, sfumato.cli, sfumato; print('torch' in sys.modules, callable(sfumato.inspect))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


@pytest.fixture
def protected_pair(tmp_path, weights_dir):
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    photo("golden_retriever").save(source)
    fast = dict(steps=1, speed="fast", device="cpu", progress=False, verbose=False)
    run_batch([source], tmp_path / "out", "cloak", style="sketch", **fast)
    return source, tmp_path / "out" / "a.png"


def test_inspect_without_a_report_does_not_call_the_encoder_transfer(protected_pair, capsys):
    original, protected = protected_pair
    (protected.parent / "a.png.json").unlink()
    assert main(["inspect", str(original), str(protected)]) == 0
    table = capsys.readouterr().out
    flux2 = next(line for line in table.splitlines() if line.strip().startswith("flux2"))
    assert "not known" in flux2 and "transfer" not in flux2
    assert main(["inspect", str(original), str(protected), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latents"]["flux2"]["attacked"] is None


def test_inspect_ignores_a_report_that_describes_other_bytes(protected_pair, capsys):
    original, protected = protected_pair
    Image.open(original).save(protected)  # as if an interrupted run had replaced the image
    assert main(["inspect", str(original), str(protected), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "describes another version of this image" in report["note"]
