"""Weight files are checked at every load: pinned hash (verdict cached by size and mtime), clear messages
for empty, truncated and damaged files, and a note for a user's own unverified checkpoint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sfumato.batch import run_batch
from sfumato.cli import main
from sfumato.encoders import integrity, load_encoder
from sfumato.encoders.integrity import DamagedWeightsError, check_weights_file

NAME = "taef2_encoder.pth"


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own verdict store and an empty in-process verdict cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(integrity, "_VERDICTS", {})


def _copy(weights_dir: Path, tmp_path: Path, name: str = NAME) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir(exist_ok=True)
    target = folder / name
    shutil.copyfile(weights_dir / NAME, target)
    return target


def _flip(path: Path, offset: int = 100_000, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_good_file_is_verified_and_the_verdict_is_cached(weights_dir, tmp_path, monkeypatch):
    path = _copy(weights_dir, tmp_path)
    assert check_weights_file(path) is True
    assert integrity.verdict_cache_path().is_file()
    calls = []
    monkeypatch.setattr(integrity, "sha256_file", lambda p: calls.append(p) or "x")
    monkeypatch.setattr(integrity, "_VERDICTS", {})
    assert check_weights_file(path) is True  # from verified.json: same size and mtime, no hashing
    assert calls == []


def test_flipped_bytes_are_refused_even_when_a_verdict_was_cached(weights_dir, tmp_path):
    path = _copy(weights_dir, tmp_path)
    assert check_weights_file(path) is True
    stat = path.stat()
    _flip(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(DamagedWeightsError, match="is damaged: its SHA-256"):
        check_weights_file(path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04" + b"\0" * 100])
def test_empty_or_truncated_files_get_a_clear_message(tmp_path, content):
    path = tmp_path / "weights" / NAME
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(DamagedWeightsError, match="empty|damaged"):
        load_encoder(str(path))


def test_own_checkpoint_loads_unverified_and_a_broken_one_is_explained(weights_dir, tmp_path):
    own = _copy(weights_dir, tmp_path, "my_encoder.pth")
    encoder = load_encoder(str(own))
    assert encoder.verified is False and encoder.source == str(own)
    junk = tmp_path / "junk_encoder.pth"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(DamagedWeightsError, match="truncated or not a PyTorch checkpoint"):
        load_encoder(str(junk))


def test_batch_with_damaged_weights_exits_1_without_writing(weights_dir, tmp_path, capsys):
    path = _copy(weights_dir, tmp_path)
    _flip(path)
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    from tests.conftest import photo

    photo("golden_retriever").save(source)
    out = tmp_path / "out"
    code = main(
        [
            "cloak",
            str(source),
            "-o",
            str(out),
            "--weights",
            str(path.parent),
            "--quiet",
            "--steps",
            "1",
            "--style",
            "sketch",
            "--device",
            "cpu",
        ]
    )
    assert code == 1
    assert "is damaged" in capsys.readouterr().err
    assert not (out / "a.png").exists()


def test_batch_notes_an_unverified_encoder(weights_dir, tmp_path, capsys):
    own = _copy(weights_dir, tmp_path, "mine_encoder.pth")
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    from tests.conftest import photo

    photo("golden_retriever").save(source)
    run_batch(
        [source],
        tmp_path / "out",
        "cloak",
        style="sketch",
        encoders=[str(own)],
        steps=1,
        device="cpu",
        progress=False,
        verbose=False,
    )
    assert "used unverified" in capsys.readouterr().err
