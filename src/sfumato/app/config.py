"""Where the app keeps its data and how much it accepts: one place, so the server, the worker and the
command line agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SFUMATO_DATA_DIR"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 64
# 4096 x 4096: the largest size measured to fit in 3 GB of memory; a 9990 x 9990 image took 9.2 GB and
# hours, so larger images are refused unless the artist raises the cap (--max-pixels).
DEFAULT_MAX_PIXELS = 4096 * 4096
LARGE_PIXELS = 2048 * 2048  # from here on the page warns that an image will take long
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$SFUMATO_DATA_DIR``, else the user data directory (``platformdirs``).

    The user data directory rather than the cache: the database holds the record of the artist's jobs
    and their protected images, which must survive a cache clean-up.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("sfumato"))


def default_threads() -> int:
    """Torch threads for the worker: every core on a small machine, all but one on a larger one, so
    the page stays responsive while a job runs."""
    cores = os.cpu_count() or 1
    return cores if cores <= 2 else cores - 1


@dataclass(frozen=True)
class AppConfig:
    """Everything the app needs to know at start-up."""

    data_dir: Path
    weights_dir: Path | None = None
    device: str = "auto"
    threads: int | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def make(
        cls,
        data_dir: str | Path | None = None,
        *,
        weights_dir: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> AppConfig:
        if max_pixels < 1:
            raise ValueError(f"the size cap must be at least 1 pixel, not {max_pixels}")
        if max_upload_mb <= 0:
            raise ValueError(f"the upload limit must be above 0 MB, not {max_upload_mb}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        return cls(
            data_dir=resolve_data_dir(data_dir).resolve(),
            weights_dir=None if weights_dir is None else Path(weights_dir).expanduser().resolve(),
            device=device,
            threads=threads,
            max_upload_bytes=int(max_upload_mb * (1 << 20)),
            max_pixels=int(max_pixels),
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "sfumato.db"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"


def make_private(config: AppConfig) -> None:
    """The data folder holds the artist's unpublished images and the record of their jobs: make it and
    its folders readable by this user only (0700), and the database files 0600, whatever the umask.

    Files written later get 0600 from :func:`private_umask`, which :func:`~sfumato.app.server.serve`
    sets for the app's process.
    """
    for folder in (config.data_dir, config.uploads_dir, config.jobs_dir):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(PRIVATE_DIR)
    for path in config.data_dir.glob("sfumato.db*"):
        path.chmod(PRIVATE_FILE)


def private_umask() -> int:
    """Files and folders this process creates from now on are private to the user (0600 / 0700);
    returns the previous umask."""
    return os.umask(0o077)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (no one else can reach the server)."""
    import ipaddress

    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
