"""The app's parts on their own: the record, the worker's edge cases, progress, heat map, names, serve."""

from __future__ import annotations

import io
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.app.conftest import JOB_TIMEOUT, png_bytes

from sfumato.app import server as server_module
from sfumato.app import worker as worker_module
from sfumato.app.config import DATA_DIR_ENV, AppConfig, is_loopback, resolve_data_dir
from sfumato.app.db import Store, Upload
from sfumato.app.downloads import content_disposition, output_names, safe_stem
from sfumato.app.heatmap import heat_map, visibility_ratio
from sfumato.app.progress import Live, job_progress, step_fraction
from sfumato.app.uploads import accept_upload, display_name
from sfumato.app.worker import Worker
from sfumato.encoders.weights import WeightsNotFoundError

# ------------------------------------------------------------------------------------------ config


def test_data_dir_comes_from_the_argument_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve_data_dir().name == "sfumato"  # the platform's user data folder


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True), ("127.0.0.2", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_config_limits_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="upload limit"):
        AppConfig.make(tmp_path, max_upload_mb=0)
    with pytest.raises(ValueError, match="threads"):
        AppConfig.make(tmp_path, threads=0)


# -------------------------------------------------------------------------------------------- store


def _store_with_job(tmp_path: Path, n: int = 2) -> tuple[Store, str]:
    store = Store(tmp_path / "db.sqlite")
    uploads = [Upload(f"{i:016x}", f"{i}.png", 10, 100, 50) for i in range(n)]
    for u in uploads:
        store.add_upload(u)
    return store, store.create_job("cloak", "fast", {"intensity": "default", "style": "auto"}, uploads)


def test_store_uses_wal_and_requeues_interrupted_work(tmp_path: Path) -> None:
    store, job_id = _store_with_job(tmp_path)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.set_job(job_id, "running")
    store.set_item(job_id, 0, "done", seconds=2.0, report={"a": 1})
    store.set_item(job_id, 1, "running")
    store.close()

    reopened = Store(tmp_path / "db.sqlite")  # a restart
    assert reopened.next_job() == job_id
    assert reopened.requeue_interrupted() == 1
    job = reopened.get_job(job_id)
    assert job is not None and job["status"] == "queued"
    assert [(i["status"], i["report"]) for i in job["items"]] == [("done", {"a": 1}), ("queued", None)]
    assert reopened.seconds_per_pixel("fast", "cloak") == pytest.approx(2.0 / 5000)
    assert reopened.seconds_per_pixel("default", "cloak") is None


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store._conn.execute("PRAGMA user_version=99")
    store.close()
    with pytest.raises(RuntimeError, match="newer sfumato"):
        Store(tmp_path / "db.sqlite")


def test_running_jobs_come_before_queued_ones(tmp_path: Path) -> None:
    store, first = _store_with_job(tmp_path)
    second = store.create_job("cloak", "fast", {}, [store.get_upload(f"{0:016x}")])  # type: ignore[list-item]
    store.set_job(second, "running")
    assert store.next_job() == second
    store.set_job(second, "done")
    assert store.next_job() == first
    assert [j["id"] for j in store.list_jobs()] == [second, first]


# ------------------------------------------------------------------------------------------- worker


class _FakeEngine:
    """Stands in for cloak(): calls the progress callback, then does ``action``."""

    def __init__(self, action: Any) -> None:
        self.action = action
        self.calls = 0

    def __call__(self, source: str, style: str, *, progress: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.action()
        progress(1, 6)
        raise AssertionError("the progress callback should have stopped the engine")


def _worker_job(config: AppConfig) -> tuple[Store, Worker, str]:
    for folder in (config.uploads_dir, config.jobs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    store = Store(config.db_path)
    upload = accept_upload(config, store, "a.png", io.BytesIO(png_bytes()))
    job_id = store.create_job("cloak", "fast", {"intensity": "default", "style": "sketch"}, [upload])
    return store, Worker(config, store), job_id


def _wait(predicate: Any, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_stopping_mid_image_puts_it_back_in_the_queue(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, worker, job_id = _worker_job(config)
    monkeypatch.setattr(worker_module, "cloak", _FakeEngine(worker.request_stop))
    worker.start()
    _wait(lambda: not worker.alive)
    job = store.get_job(job_id)
    assert job is not None and job["status"] == "running" and job["items"][0]["status"] == "queued"


def test_cancelling_a_running_image_stops_it(config: AppConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    store, worker, job_id = _worker_job(config)
    monkeypatch.setattr(worker_module, "cloak", _FakeEngine(lambda: worker.cancel(job_id)))
    worker.start()
    _wait(lambda: store.get_job(job_id)["status"] == "cancelled")  # type: ignore[index]
    worker.stop()
    job = store.get_job(job_id)
    assert job is not None and job["items"][0]["status"] == "cancelled"


def test_missing_weights_fail_the_job_once_with_the_reason(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, worker, job_id = _worker_job(config)

    def missing() -> None:
        raise WeightsNotFoundError("taef2_encoder.pth not found in /nowhere; pass --weights DIR")

    monkeypatch.setattr(worker_module, "cloak", _FakeEngine(missing))
    worker.start()
    _wait(lambda: store.get_job(job_id)["status"] == "failed")  # type: ignore[index]
    worker.stop()
    job = store.get_job(job_id)
    assert job is not None and "taef2_encoder.pth not found" in job["error"]
    assert job["items"][0]["status"] == "failed" and "--weights" in job["items"][0]["error"]


def test_an_upload_that_went_bad_fails_its_image_only(config: AppConfig) -> None:
    store, worker, job_id = _worker_job(config)
    job = store.get_job(job_id)
    assert job is not None
    (config.uploads_dir / job["items"][0]["upload_id"] / "source").write_bytes(b"")
    worker.start()
    _wait(lambda: store.get_job(job_id)["status"] == "failed")  # type: ignore[index]
    worker.stop()
    job = store.get_job(job_id)
    assert job is not None and job["items"][0]["error"] == "a.png is empty (0 bytes)"


# ----------------------------------------------------------------------------------------- progress


def _job(status: str, items: list[tuple[str, int, float | None]]) -> dict[str, Any]:
    return {
        "id": "j",
        "status": status,
        "items": [
            {"idx": i, "status": s, "pixels": p, "seconds": sec} for i, (s, p, sec) in enumerate(items)
        ],
    }


def test_time_left_from_this_jobs_measured_pace() -> None:
    job = _job("running", [("done", 1000, 10.0), ("running", 1000, None), ("queued", 2000, None)])
    live = Live("j", 1, started=100.0, fraction=step_fraction(3, 6))
    p = job_progress(job, live, history_rate=None, now=104.0)
    assert p["items"] == [1.0, pytest.approx(0.425), 0.0]
    assert p["fraction"] == pytest.approx((1000 + 425) / 4000, abs=1e-4)
    # current: 4 s for 42.5 % -> 5.4 s more; the queued image: 2000 px at 10 ms/px = 20 s
    assert p["seconds_left"] == pytest.approx(20 + 4 * (1 - 0.425) / 0.425, abs=0.1)


def test_time_left_from_history_then_unknown() -> None:
    job = _job("queued", [("queued", 500, None), ("queued", 500, None)])
    assert job_progress(job, None, history_rate=0.01)["seconds_left"] == pytest.approx(10)
    assert job_progress(job, None, history_rate=None)["seconds_left"] is None
    done = _job("done", [("done", 500, 1.0), ("failed", 500, None)])
    assert job_progress(done, None, None) | {"items": None} == {
        "fraction": 1.0,
        "items": None,
        "seconds_left": 0.0,
        "phase": None,
        "current": None,
    }


# ------------------------------------------------------------------------------------------ heat map


def test_heat_map_measures_change_against_visibility() -> None:
    grey = torch.full((3, 64, 64), 0.5)
    changed = grey.clone()
    changed[:, :, :32] += 10 / 255  # far above the ~3/255 threshold on flat mid-grey
    ratio = visibility_ratio(grey, changed)
    assert ratio[:, 40:].max() == 0 and ratio[:, :28].min() > 1
    image, figures = heat_map(grey, changed)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert figures["visible_fraction"] == pytest.approx(0.5, abs=0.05)
    left, right = image.getpixel((5, 30)), image.getpixel((60, 30))
    assert sum(left) > 3 * sum(right)  # changed: bright; unchanged: the dim grey underlay


# --------------------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("a.png", "a.png"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\art.jpg", "art.jpg"),
     ("bell\x07.png", "bell.png"), ("", "unnamed image"), ("..", "unnamed image"), (None, "unnamed image")],
)  # fmt: skip
def test_display_names(raw: str | None, shown: str) -> None:
    assert display_name(raw) == shown


def test_long_names_are_shortened_keeping_the_suffix() -> None:
    name = display_name("x" * 500 + ".png")
    assert len(name) <= 120 and name.endswith("….png")


def test_download_names_are_safe_and_unique() -> None:
    assert safe_stem("../a b.png") == "_a b"
    assert safe_stem(".hidden") == "hidden"
    assert safe_stem("日本.jpg") == "日本"
    items = [{"idx": i, "name": n} for i, n in enumerate(["a.png", "A.jpg", "a.tif", "b.png"])]
    assert output_names(items) == {0: "a.png", 1: "A (2).png", 2: "a (3).png", 3: "b.png"}
    header = content_disposition("日本.png")
    assert header.startswith('attachment; filename="__.png"') and "UTF-8''%E6%97%A5%E6%9C%AC.png" in header


# ------------------------------------------------------------------------------------------- serve


def test_serve_prints_the_url_and_warns_when_reachable_from_the_network(
    config: AppConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An address other than loopback gets a warning (bound here to loopback: no traffic leaves)."""
    runs: list[Any] = []
    opened: list[str] = []

    def fake_bind(host: str, port: int) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    monkeypatch.setattr(server_module, "_bind", fake_bind)
    monkeypatch.setattr(server_module.uvicorn.Server, "run", lambda self, sockets: runs.append(sockets))
    monkeypatch.setattr(server_module.webbrowser, "open", opened.append)
    lines: list[str] = []
    server_module.serve(config, host="192.0.2.10", port=0, open_browser=False, echo=lines.append)
    assert lines[0].startswith("warning: serving on 192.0.2.10") and "no password" in lines[0]
    assert lines[1].startswith("sfumato app: http://192.0.2.10:") and len(runs) == 1
    runs[0][0].close()
    lines.clear()
    server_module.serve(config, host="127.0.0.1", port=0, open_browser=False, echo=lines.append)
    assert len(lines) == 1 and lines[0].startswith("sfumato app: http://127.0.0.1:")
    runs[1][0].close()
    assert not opened


def test_serve_command_without_the_app_extra_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sfumato.cli import main

    monkeypatch.delitem(sys.modules, "sfumato.app.server")
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--no-browser"]) == 1
    assert "pip install 'sfumato[app]'" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
