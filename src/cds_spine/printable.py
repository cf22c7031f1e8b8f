"""Text from others (an EHR's hookInstance, a clinician's name) made safe for a terminal or a text log: control
characters (CR and LF forge a log line of their own, BEL rings, ESC drives the terminal) and the invisible
characters that reorder text (a right-to-left override makes a name read backwards) are written as escapes."""
from __future__ import annotations

UNSEEN = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
ESCAPED = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in UNSEEN}


def printable(text: str) -> str:
    return text.translate(ESCAPED)
