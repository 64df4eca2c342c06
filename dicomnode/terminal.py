"""Text for a terminal: values from DICOM headers and peers never reach it raw.

A SeriesDescription, an AE title or an error text can hold ESC, BEL, CR or other control
characters; printed raw they move the cursor, recolour or retitle the operator's terminal,
or hide a line. Tables print them as visible escapes instead (``\\x1b``, ``\\r``).
JSON output needs none of this: :func:`json.dumps` escapes control characters itself.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(value: object) -> str:
    """``value`` as text with every non-printable character as a visible escape.

    Control characters (C0, DEL, C1), line and paragraph separators and other characters
    :meth:`str.isprintable` refuses become ``\\xNN``/``\\uNNNN`` (``\\n``, ``\\r``, ``\\t``
    by name); ``None`` becomes the empty string.

    Parameters
    ----------
    value : object
        What to show (``str()`` of it).

    Returns
    -------
    str
        Text safe to print on a terminal.
    """
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)
