"""Fixtures for the app's tests: tiny real photos, a config in a temporary data folder, clients."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the app tests need the app extra: pip install -e '.[app]'")
pytest.importorskip("httpx", reason="the app's API tests need httpx (the dev extra)")

from starlette.testclient import TestClient  # noqa: E402
from tests.conftest import photo  # noqa: E402

from sfumato.app.config import AppConfig  # noqa: E402
from sfumato.app.server import create_app  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HEADERS = {"X-Sfumato": "1"}
# A job of two tiny images takes seconds; the limits are generous for a machine shared with other work.
JOB_TIMEOUT = 600.0


def png_bytes(pattern: str = "goldfish", size: tuple[int, int] = (96, 72)) -> bytes:
    """A real photo from ../shared, resized (tiny: the tests protect at ``fast`` speed)."""
    buf = io.BytesIO()
    photo(pattern, size).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def config(tmp_path: Path, weights_dir: Path) -> AppConfig:
    return AppConfig.make(tmp_path / "data", weights_dir=weights_dir, device="cpu", threads=2)


@pytest.fixture
def client_for() -> Iterator[Callable[..., TestClient]]:
    """Open clients on apps (worker started unless told otherwise); all closed at the end."""
    opened: list[TestClient] = []

    def make(config: AppConfig, **kwargs: Any) -> TestClient:
        client = TestClient(create_app(config, **kwargs), base_url="http://localhost", headers=dict(HEADERS))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


def upload(client: TestClient, *files: tuple[str, bytes]) -> dict[str, Any]:
    response = client.post(
        "/api/uploads", files=[("files", (name, data, "image/png")) for name, data in files]
    )
    return response.json()


def upload_ids(client: TestClient, *files: tuple[str, bytes]) -> list[str]:
    result = upload(client, *files)
    assert not result["rejected"], result
    return [u["id"] for u in result["accepted"]]


def wait_for_job(client: TestClient, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    """Poll like the page does until the job is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
