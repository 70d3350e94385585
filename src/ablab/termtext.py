"""Make user-controlled text safe to print on a terminal through Rich.

Two hazards: Rich reads ``[...]`` as markup (a config value ``[/data/train.csv]`` crashes the
print with a MarkupError, ``[batch, 3, 32, 32]`` silently vanishes as an unknown style), and
terminal control sequences in a run's error, a config value or a bundle's records can move the
cursor, clear the screen, retitle the window or hide text. :func:`clean` removes ANSI/VT escape
sequences (CSI, OSC, two-byte escapes) and every other C0/C1 control character except newline
and tab; :func:`safe` also escapes Rich markup. Rich's own ``strip_control_codes`` removes only
BEL, BS, VT, FF and CR, so ESC would pass, hence this small helper.
"""

from __future__ import annotations

import re
from typing import Any

_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement, erase
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes (ESC c resets the terminal)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")  # CRLF kept (CSV)


def clean(value: Any) -> str:
    """``str(value)`` without terminal escape sequences and control characters (keeps newlines,
    CR-LF line ends and tabs)."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", str(value)))


def safe(value: Any) -> str:
    """:func:`clean`, then Rich markup escaped: for interpolating into a Rich markup string."""
    from rich.markup import escape

    return escape(clean(value))
