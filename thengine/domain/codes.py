"""Printable signed codes: the answer of a ``by = "code"`` clue, derived from a secret.

The database keeps one random secret (meta key `CODE_SECRET_META_KEY`). A hunt's key is
derived from it and the hunt id, and a clue's code from that key and the clue id, so a
code printed for one hunt solves nothing in another, and neither the secret nor any code
is ever written into a hunt file or an event. The engine gives each hunt state its key
(`HuntState.code_key`) before deciding; a code clue is solved by an answer that is the
code, or ends with it after ``/``, ``=`` or ``#`` (a URL around the code is fine).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

CODE_SECRET_META_KEY = "code_secret"
#: The start of every code: the scheme's version.
PREFIX = "TH1-"


def hunt_key(secret: bytes, hunt_id: str) -> bytes:
    """The key of one hunt's codes."""
    return hmac.new(secret, b"thengine hunt codes\0" + hunt_id.encode(), hashlib.sha256).digest()


def code_for(key: bytes, clue_id: str) -> str:
    """The code of a clue: ``TH1-`` and 24 base32 characters (120 bits)."""
    mac = hmac.new(key, b"clue\0" + clue_id.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b32encode(mac[:15]).decode()


def solves(key: bytes, clue_id: str, answer: str) -> bool:
    """Whether `answer` (as scanned) carries the clue's code."""
    code = code_for(key, clue_id)
    if answer == code:
        return True
    return len(answer) > len(code) and answer.endswith(code) and answer[-len(code) - 1] in "/=#"
