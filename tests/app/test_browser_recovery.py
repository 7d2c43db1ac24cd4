"""Issue 23 in a real headless Chromium: the verdict of a flat image, delete, rerun of a cancelled
image, and a page that recovers by itself when the server restarts (skipped without Chromium, as
:mod:`tests.app.test_browser`)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
from PIL import Image
from tests.app.conftest import ARTIFACTS, JOB_TIMEOUT
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, playwright  # noqa: F401 - fixture
from tests.conftest import photo

pytestmark = pytest.mark.browser
STEP_MS = 120_000  # tiny images: every step is seconds; a hang fails in minutes, not the 10 of a job


class Server:
    """``sfumato serve`` in a subprocess that can be stopped and started again on the same port and
    data folder, as an artist restarting the app does."""

    def __init__(self, data: Path, weights: Path) -> None:
        self.data, self.weights, self.port = data, weights, 0
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        cmd = [sys.executable, "-m", "sfumato.cli", "serve", "--port", str(self.port), "--no-browser"]
        cmd += [
            "--data-dir",
            str(self.data),
            "--weights",
            str(self.weights),
            "--device",
            "cpu",
            "--threads",
            "2",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: Queue[str] = Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        while True:
            try:
                line = lines.get(timeout=JOB_TIMEOUT)
            except Empty:
                pytest.fail("sfumato serve printed no URL")
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.url, self.port = found.group(0), int(found.group(1))
                return self.url

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def server(tmp_path: Path, weights_dir: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data", weights_dir)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def page(playwright: Any, server: Server) -> Iterator[Any]:  # noqa: F811 - the imported fixture
    with playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            tab = context.new_page()
            tab.set_default_timeout(STEP_MS)
            tab.goto(server.url)
            tab.wait_for_selector("#styles .style-card")
            yield tab
        finally:
            context.close()


def _add_images(page: Any, paths: list[Path]) -> None:
    page.set_input_files("#file-input", [str(p) for p in paths])
    page.wait_for_function(
        f"() => document.querySelectorAll('#images li:not(.pending)').length === {len(paths)}"
    )


def _wait_done(page: Any, n: int) -> None:
    # a whole job, not one step: as long as any job may take (JOB_TIMEOUT), so a busy machine is not a hang
    page.wait_for_function(
        "() => document.getElementById('job-progress').textContent === '100 %'", timeout=JOB_TIMEOUT * 1000
    )
    page.wait_for_function(
        f"() => document.getElementById('job-status').textContent.includes('{n} of {n} done')"
    )


def test_a_flat_image_gets_no_protection_and_the_job_can_be_deleted(
    page: Any, server: Server, tmp_path: Path
) -> None:
    flat = tmp_path / "flat grey.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(flat)
    _add_images(page, [flat])
    page.wait_for_function("() => document.getElementById('estimate').textContent.includes('This will take')")
    page.click(".style-card:has(input[value=comic])")  # comic moves flat grey away from its target
    page.check("input[name=speed][value=fast]")
    page.click("#start")
    _wait_done(page, 1)
    row = page.locator("#job-items tr").first
    assert row.locator(".verdict b").inner_text() == "No protection"
    assert "verdict-none" in row.locator(".verdict b").get_attribute("class")
    assert "not protected" in row.inner_text()
    assert page.locator(".verdict-strong, .status-done").count() == 0  # nothing green says protected
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "app-6-flat-verdict.png", full_page=True)

    job_id = page.evaluate("() => location.hash.slice(5)")
    assert (server.data / "jobs" / job_id).is_dir()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-job")
    page.wait_for_function("() => location.hash === ''")
    page.wait_for_selector("#no-jobs:not([hidden])")
    assert not (server.data / "jobs" / job_id).exists()


def test_rerun_of_cancelled_images_and_recovery_after_a_restart(
    page: Any, server: Server, tmp_path: Path
) -> None:
    images = []
    for name, pattern in (("fish.png", "goldfish"), ("cat.png", "tabby")):
        images.append(tmp_path / name)
        photo(pattern, (256, 192)).save(images[-1])
    _add_images(page, images)
    page.check("input[name=speed][value=fast]")
    page.click("#start")
    page.wait_for_selector("#cancel-job:not([hidden])")
    page.click("#cancel-job")
    page.wait_for_function("() => document.getElementById('job-status').textContent.startsWith('cancelled')")
    assert "stopped before they ran" in page.inner_text(
        "#job-status"
    ) or "stopped before it" in page.inner_text("#job-items")
    assert page.inner_text("#job-progress") != "100 %"  # honest: not "100 % cancelled"
    page.wait_for_selector("#rerun-job:not([hidden])")

    # rerun, and stop the server while it runs: the page says so and carries on by itself after a restart
    page.click("#rerun-job")
    page.wait_for_function("() => document.getElementById('job-status').textContent.startsWith('protecting')")
    server.stop()
    page.wait_for_selector("#connection:not([hidden])")
    assert "reconnecting" in page.inner_text("#connection")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "app-7-reconnecting.png", full_page=True)
    server.start()
    page.wait_for_selector("#connection", state="hidden")
    _wait_done(page, 2)
    assert page.locator("#job-items .verdict").count() == 2

    # the home page shows the last job first, and chosen images survive a reload
    page.click("header nav a[href='#']")
    page.wait_for_selector("#current:not([hidden])")
    assert "Style protection" in page.inner_text("#current-link")
    _add_images(page, images[:1])
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#images li:not(.pending)').length === 1")
    assert page.inner_text("#start") == "Protect 1 image"


def test_auto_style_gives_the_whole_job_one_target_style(page: Any, tmp_path: Path) -> None:
    """Issue 23: with the style left at auto, every image of a job is cloaked toward the same style
    (a mimic trained on the set sees one wrong target), and the page shows which."""
    images = []
    for name, pattern in (("fish.png", "goldfish"), ("dog.png", "golden_retriever"), ("cat.png", "tabby")):
        images.append(tmp_path / name)
        photo(pattern, (64, 64)).save(images[-1])
    _add_images(page, images)
    assert page.locator("input[name=style][value=auto]").is_checked()
    page.check("input[name=speed][value=fast]")
    page.click("#start")
    _wait_done(page, 3)
    details = page.locator("#job-items .figs").all_text_contents()
    styles = {m.group(1) for text in details for m in [re.search(r"target style (\w+)", text)] if m}
    assert len(details) == 3 and len(styles) == 1, details
