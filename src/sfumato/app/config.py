"""Where the app keeps its data and how much it accepts: one place, so the server, the worker and the
command line agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "SFUMATO_DATA_DIR"
DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 64
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

    @classmethod
    def make(
        cls,
        data_dir: str | Path | None = None,
        *,
        weights_dir: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    ) -> AppConfig:
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
