"""sfumato: protect images from text-to-image generators, and measure whether protection works.

Public API: :func:`shade` (concept poisoning, like Nightshade), :func:`cloak` (style cloaking, like
Glaze), :func:`inspect` (the effect figures for any original/protected pair).
"""

from sfumato.inspect import inspect
from sfumato.protect import Protected, Settings, cloak, shade
from sfumato.styles import STYLE_NAMES

__all__ = ["STYLE_NAMES", "Protected", "Settings", "cloak", "inspect", "shade"]
__version__ = "0.1.0"
