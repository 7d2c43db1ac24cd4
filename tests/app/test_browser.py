"""The app end to end, as an artist uses it: ``sfumato serve`` and the page in a real headless Chromium.

Upload two images, run a fast cloak, see progress reach 100 %, open the before/after view, download
the zip. Screenshots of the main states go to ``tests/app/artifacts/``. Debian's ``chromium`` is
driven by Playwright through its ``executable_path`` (no ``playwright install``: no internet); the
test skips without it, unless ``SFUMATO_REQUIRE_BROWSER=1`` (CI), where a missing browser fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest
from tests.app.conftest import ARTIFACTS, JOB_TIMEOUT
from tests.conftest import photo

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("SFUMATO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = int(JOB_TIMEOUT * 1000)


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("SFUMATO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SFUMATO_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def playwright() -> Any:
    """Playwright's sync API, once Debian's Chromium and the playwright package are both there."""
    _need(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (it comes with the dev extra)")
    return sync_playwright


@pytest.fixture
def server(tmp_path: Path, weights_dir: Path) -> Iterator[str]:
    """``sfumato serve`` in a subprocess on a free port; yields the URL it prints."""
    cmd = [sys.executable, "-m", "sfumato.cli", "serve", "--port", "0", "--no-browser"]
    cmd += ["--data-dir", str(tmp_path / "data"), "--weights", str(weights_dir), "--device", "cpu"]
    cmd += ["--threads", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: Queue[str] = Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    output: list[str] = []
    url = None
    try:
        while url is None:
            try:
                line = lines.get(timeout=JOB_TIMEOUT)
            except Empty:
                pytest.fail(f"sfumato serve printed no URL in {JOB_TIMEOUT:.0f} s: {''.join(output)}")
            output.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = found.group(0) if found else None
        yield url
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl+C: the worker stops, the database closes
        try:
            code = proc.wait(JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    assert code == 0, "".join(output) + "".join(lines.queue)


def test_upload_cloak_compare_and_download(playwright: Any, server: str, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    images = []
    for name, pattern, size in (("goldfish.png", "goldfish", (96, 72)), ("tabby cat.png", "tabby", (80, 96))):
        images.append(tmp_path / name)
        photo(pattern, size).save(images[-1])

    outside: list[str] = []
    problems: list[str] = []
    with playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)

            def only_this_machine(route, request) -> None:  # noqa: ANN001 - Playwright's objects
                if request.url.startswith(server) or request.url.startswith(("data:", "blob:")):
                    route.continue_()
                else:
                    outside.append(request.url)
                    route.abort()

            page.route("**/*", only_this_machine)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            page.goto(server)
            page.wait_for_selector("#styles .style-card")
            page.set_input_files("#file-input", [str(i) for i in images])
            page.wait_for_function("() => document.querySelectorAll('#images li:not(.pending)').length === 2")
            assert page.inner_text("#start") == "Protect 2 images"
            page.wait_for_function(
                "() => [...document.querySelectorAll('#styles img.preview')]"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            page.click(".style-card:has(input[value=sketch])")
            page.check("input[name=speed][value=fast]")
            # "Protect against": every family this machine can attack, all of them by default
            assert page.is_checked("input[name=family][value=auto]")
            assert "FLUX.2" in page.inner_text("#families") and "Sana" in page.inner_text("#families")
            page.screenshot(path=ARTIFACTS / "app-1-choose.png", full_page=True)

            page.click("#start")
            page.wait_for_selector("#job:not([hidden])")
            page.wait_for_function(
                "() => document.getElementById('job-progress').textContent === '100 %'", timeout=TIMEOUT_MS
            )
            page.wait_for_selector("#download-zip:not([hidden])")
            assert "2 of 2 done" in page.inner_text("#job-status")
            page.screenshot(path=ARTIFACTS / "app-2-done.png", full_page=True)

            page.click("#job-items tr:first-child .compare")
            page.wait_for_selector("#viewer:not([hidden])")
            page.select_option("#zoom", "4")
            page.fill("#slider", "50")
            page.wait_for_function(
                "() => ['before-img', 'after-img'].every(i => document.getElementById(i).naturalWidth === 96)"
            )
            assert page.eval_on_selector("#after-img", "e => e.getBoundingClientRect().width") == 384
            verdict = page.inner_text("#viewer-verdict")
            assert re.match(r"(Weak|No) protection", verdict) and "protected" not in verdict.split(".")[0]
            assert page.inner_text("#figures") == ""  # the technical figures wait behind "details"
            page.click("#viewer-details summary")
            figures = page.inner_text("#figures")
            assert (
                "PSNR" in figures
                and "Latent movement (flux2)" in figures
                and "Latent movement (sana)" in figures
            )
            box = page.locator("#layers").bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)  # drag point
            assert 22 <= int(page.input_value("#slider")) <= 28
            page.fill("#slider", "50")
            page.locator("#viewer").screenshot(path=ARTIFACTS / "app-3-compare.png")
            page.check("input[name=view][value=side]")
            page.wait_for_function("() => document.getElementById('side-after').naturalWidth === 96")
            page.locator("#viewer").screenshot(path=ARTIFACTS / "app-4-side.png")
            page.check("input[name=view][value=heat]")
            page.wait_for_function("() => document.getElementById('heat-img').naturalWidth === 96")
            page.locator("#viewer").screenshot(path=ARTIFACTS / "app-4-heat-map.png")
            page.check("input[name=view][value=slider]")
            page.screenshot(path=ARTIFACTS / "app-5-full.png", full_page=True)

            with page.expect_download() as download:
                page.click("#download-zip")
            archive = tmp_path / "all.zip"
            download.value.save_as(archive)
            with zipfile.ZipFile(archive) as zf:
                pngs = sorted(n for n in zf.namelist() if n.endswith(".png"))
            assert pngs == ["goldfish.png", "tabby cat.png"]

            # closing and reopening the page loses nothing
            page.close()
            again = context.new_page()
            again.goto(server)
            again.wait_for_selector("#job-list li a")
            again.click("#job-list li a")
            again.wait_for_function("() => document.getElementById('job-progress').textContent === '100 %'")
            assert again.locator("#job-items .compare").count() == 2
        finally:
            context.close()
    assert not outside, f"the page asked for resources off this machine: {outside}"
    assert not problems, f"errors in the page: {problems}"
