"""Weight lookup order, the not-found message, and downloads against a local HTTP server only."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfumato.encoders import weights
from sfumato.encoders.weights import (
    ENV_VAR,
    KNOWN_UNPINNED,
    UPSTREAM,
    ChecksumError,
    WeightsNotFoundError,
    download,
    find_weights,
    sha256_file,
)

NAME = "taef2_encoder.pth"
PAYLOAD = b"not really a checkpoint\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may see the developer's own weights dir, nor reach 127.0.0.1 through a proxy."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server() -> Iterator[str]:
    """Serve PAYLOAD at /<anything>.pth (404 elsewhere) on 127.0.0.1; yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith(".pth"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _put(directory: Path, content: bytes = b"x") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / NAME
    path.write_bytes(content)
    return path


def test_explicit_dir_beats_env_beats_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env, cache = _put(tmp_path / "explicit"), _put(tmp_path / "env"), _put(tmp_path / "cache")
    monkeypatch.setenv(ENV_VAR, str(env.parent))
    kw = {"cache_dir": cache.parent, "download": False}
    assert find_weights(NAME, explicit.parent, **kw) == explicit
    assert find_weights(NAME, tmp_path / "empty", **kw) == env
    assert find_weights(NAME, **kw) == env
    monkeypatch.delenv(ENV_VAR)
    assert find_weights(NAME, **kw) == cache


def test_hand_placed_files_are_used_as_is(tmp_path: Path) -> None:
    # Content does not match the pin, but a user's own copy (no sidecar) must be accepted.
    path = _put(tmp_path, b"my own retrained copy")
    assert find_weights(NAME, cache_dir=tmp_path, download=False) == path


def test_missing_everywhere_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "envdir"))
    with pytest.raises(WeightsNotFoundError) as info:
        find_weights(NAME, tmp_path / "mine", cache_dir=cache, download=False)
    message = str(info.value)
    assert NAME in message
    for place in (tmp_path / "mine", tmp_path / "envdir", cache):
        assert str(place) in message
    assert UPSTREAM[NAME][0] in message and UPSTREAM[NAME][1] in message
    assert ENV_VAR in message and "--weights" in message
    assert info.value.url == UPSTREAM[NAME][0]
    assert len(info.value.searched) == 3
    assert isinstance(info.value, FileNotFoundError)


def test_unpinned_names_are_never_downloaded(tmp_path: Path) -> None:
    name = "taesd_encoder.pth"
    assert name in KNOWN_UNPINNED and name not in UPSTREAM
    # download=True, yet no network is touched: there is no hash to check a download against.
    with pytest.raises(WeightsNotFoundError, match="no pinned checksum") as info:
        find_weights(name, cache_dir=tmp_path)
    assert "madebyollin/taesd" in str(info.value)
    assert "$SFUMATO_WEIGHTS (not set)" in str(info.value)
    (tmp_path / name).write_bytes(b"x")
    assert find_weights(name, cache_dir=tmp_path) == tmp_path / name


def test_rejects_paths_as_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        find_weights("../" + NAME, cache_dir=tmp_path, download=False)


def test_download_verifies_hash(tmp_path: Path, server: str) -> None:
    dest = tmp_path / "sub" / "w.pth"
    assert download(f"{server}/w.pth", dest, PAYLOAD_SHA.upper(), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert sha256_file(dest) == PAYLOAD_SHA

    bad = tmp_path / "bad.pth"
    with pytest.raises(ChecksumError, match="discarded"):
        download(f"{server}/w.pth", bad, "0" * 64, progress=False)
    assert not bad.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no temporary file left behind


def test_download_network_errors_are_clear(tmp_path: Path, server: str) -> None:
    with pytest.raises(WeightsNotFoundError, match="HTTP 404"):
        download(f"{server}/nothing-here", tmp_path / "w.pth", PAYLOAD_SHA, progress=False)
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsNotFoundError, match="offline"):
        download(f"http://127.0.0.1:{port}/w.pth", tmp_path / "w.pth", PAYLOAD_SHA, progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_find_weights_downloads_into_cache_and_reverifies(
    tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "fake_encoder.pth"
    monkeypatch.setitem(UPSTREAM, name, (f"{server}/{name}", PAYLOAD_SHA))
    cache = tmp_path / "cache"
    path = find_weights(name, cache_dir=cache, progress=True)
    assert path == cache / name and path.read_bytes() == PAYLOAD
    assert (cache / f"{name}.sha256").read_text().startswith(PAYLOAD_SHA)

    # Found in the cache now: no second download.
    monkeypatch.setattr(weights, "download", lambda *a, **k: pytest.fail("downloaded twice"))
    assert find_weights(name, cache_dir=cache) == path

    # A file we downloaded is re-verified; a damaged one is reported, not silently used.
    path.write_bytes(b"damaged")
    with pytest.raises(ChecksumError, match="Delete it"):
        find_weights(name, cache_dir=cache)


def test_find_weights_reports_failed_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(UPSTREAM, NAME, (f"http://127.0.0.1:{port}/{NAME}", PAYLOAD_SHA))
    with pytest.raises(WeightsNotFoundError, match="offline") as info:
        find_weights(NAME, cache_dir=tmp_path / "cache", progress=False)
    assert str(tmp_path / "cache") in str(info.value)
    assert not (tmp_path / "cache" / NAME).exists()


def test_pins_match_shared_checksums() -> None:
    """The pinned hashes are the ones of the reference copies in shared/, where that is present."""
    root = Path(__file__).resolve().parents[1]
    sums = next(
        (p for p in (root.parent / "shared", root / "shared") if (p / "weights/taesd/SHA256SUMS").is_file()),
        None,
    )
    if sums is None:
        pytest.skip("shared/weights/taesd not present")
    listed = dict(
        reversed(line.split())
        for line in (sums / "weights/taesd/SHA256SUMS").read_text().splitlines()
        if line
    )
    for name, (url, sha) in UPSTREAM.items():
        assert listed[name] == sha
        assert url.endswith("/" + name)
