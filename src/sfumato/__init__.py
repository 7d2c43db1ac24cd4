"""sfumato: protect images from text-to-image generators, and measure whether protection works.

Public API: :func:`shade` (concept poisoning, like Nightshade), :func:`cloak` (style cloaking, like
Glaze), :func:`inspect` (the effect figures for any original/protected pair); against a generator
(``against=``, docs/objectives.md), :func:`protect_works` for the folder-level schemes.
"""

from sfumato.inspect import inspect
from sfumato.protect import Protected, Settings, cloak, shade
from sfumato.styles import STYLE_NAMES
from sfumato.works import protect_works

__all__ = ["STYLE_NAMES", "Protected", "Settings", "cloak", "inspect", "protect_works", "shade"]
__version__ = "0.1.0"
