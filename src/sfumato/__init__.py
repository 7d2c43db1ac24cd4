"""sfumato: protect images from text-to-image generators, and measure whether protection works.

Public API: :func:`shade` (concept poisoning, like Nightshade), :func:`cloak` (style cloaking, like
Glaze), :func:`inspect` (the effect figures for any original/protected pair); against a generator
(``against=``, docs/objectives.md), :func:`protect_works` for the folder-level schemes.

The names are imported on first use (PEP 562), so that ``import sfumato.cli`` does not pull in torch:
the command line parses its options, and a Ctrl-C in the first seconds is answered in one line instead
of a traceback from inside torch's import.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["STYLE_NAMES", "Protected", "Settings", "cloak", "inspect", "protect_works", "shade"]
__version__ = "0.1.0"

_HOMES = {
    "inspect": "sfumato.inspect",
    "Protected": "sfumato.protect",
    "Settings": "sfumato.protect",
    "cloak": "sfumato.protect",
    "shade": "sfumato.protect",
    "STYLE_NAMES": "sfumato.styles",
    "protect_works": "sfumato.works",
}

if TYPE_CHECKING:  # pragma: no cover
    from sfumato.inspect import inspect
    from sfumato.protect import Protected, Settings, cloak, shade
    from sfumato.styles import STYLE_NAMES
    from sfumato.works import protect_works


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sfumato' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


class _Package(ModuleType):
    """Keeps ``sfumato.inspect`` the function: importing the submodule of the same name (as the batch
    does) would otherwise rebind the package attribute to the module, as eager imports used to undo."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOMES and isinstance(value, ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
