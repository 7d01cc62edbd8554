"""Access tokens for the network server: HMAC-signed claims, checked without a lookup.

A token is ``base64url(claims JSON) "." base64url(HMAC-SHA256(secret, first part))``
(unpadded base64url, so it is safe in URLs, headers and shell variables). The claims::

    {"role": "admin" | "player", "player_id": "p1" (player tokens only),
     "iat": issued at, "exp": expires at (unix seconds), "kid": secret id}

The secret (32 random bytes) lives in the database's ``meta`` table under
`SECRET_META_KEY`, hex encoded; ``thengine init`` makes it and ``thengine token
--rotate-secret`` replaces it, which invalidates every token signed before. ``kid``
names the secret a token was signed with (a digest of it, never the secret), so a
token from before a rotation is refused with a reason that says so.

Pure: no I/O and no clock; the caller passes the secret and the current time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

import attrs

from ..domain.fields import ID_PATTERN
from ..errors import ThengineError

SECRET_META_KEY = "token_secret"
SECRET_BYTES = 32
ROLES = ("admin", "player")
DEFAULT_TTL_S = 24 * 3600
#: Longer than any claims JSON we issue; a bigger token is refused before decoding it.
MAX_TOKEN_LEN = 1024


class TokenError(ThengineError):
    """A token cannot be accepted; the message says why (malformed, bad signature, expired)."""


@attrs.frozen(kw_only=True)
class Claims:
    """What a verified token says about its bearer."""

    role: str
    player_id: str | None
    iat: int
    exp: int
    kid: str


def new_secret() -> bytes:
    """A fresh random signing secret."""
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(secret: bytes) -> str:
    """The secret as stored in ``meta`` (hex)."""
    return secret.hex()


def decode_secret(text: str) -> bytes:
    """The secret from its ``meta`` text. Raises `TokenError` if it is not a secret."""
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise TokenError("the stored token secret is not hex; rotate it with `thengine token --rotate-secret`") from None
    if len(secret) < 16:
        raise TokenError("the stored token secret is too short; rotate it with `thengine token --rotate-secret`")
    return secret


def secret_id(secret: bytes) -> str:
    """A short public name of `secret` (``kid``): which secret signed a token."""
    return hashlib.sha256(b"thengine-kid:" + secret).hexdigest()[:12]


def issue(secret: bytes, *, role: str, player_id: str | None = None, ttl_s: int, now_s: int) -> str:
    """Sign a token for `role` (and `player_id`, required for players) valid `ttl_s` seconds.

    Raises:
        ValueError: see `check_claims`.
    """
    check_claims(role=role, player_id=player_id, ttl_s=ttl_s)
    claims: dict[str, Any] = {"role": role}
    if player_id is not None:
        claims["player_id"] = player_id
    claims.update(iat=now_s, exp=now_s + ttl_s, kid=secret_id(secret))
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_b64encode(_sign(secret, payload))}"


def check_claims(*, role: str, player_id: str | None, ttl_s: int) -> None:
    """Check what a token would say, without signing it.

    Raises:
        ValueError: an unknown role, a player without a valid id, an admin with one,
            or a ttl below one second; the message names the field.
    """
    if role not in ROLES:
        raise ValueError(f"role: must be 'admin' or 'player', got {role!r}")
    if role == "player":
        if player_id is None or not ID_PATTERN.fullmatch(player_id):
            raise ValueError(f"player_id: a player token needs an id of 1-64 letters, digits or _-.:, got {player_id!r}")
    elif player_id is not None:
        raise ValueError(f"player_id: only player tokens carry one, got {player_id!r} for role {role!r}")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ValueError(f"ttl_s: must be a whole number of seconds >= 1, got {ttl_s!r}")


def verify(secret: bytes, token: str, *, now_s: int) -> Claims:
    """The claims of a genuine, unexpired token signed with `secret`.

    Raises:
        TokenError: "malformed token", "bad signature" (forged, altered, or signed with
            another secret, e.g. before a rotation) or "token expired".
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN or token.count(".") != 1:
        raise TokenError("malformed token")
    payload, signature = token.split(".")
    try:
        given = _b64decode(signature)
        raw = _b64decode(payload)
    except ValueError:
        raise TokenError("malformed token") from None
    if not hmac.compare_digest(given, _sign(secret, payload)):
        kid = _unverified_kid(raw)
        if kid is not None and kid != secret_id(secret):
            raise TokenError("bad signature: the token was signed with another secret (rotated since?)")
        raise TokenError("bad signature")
    claims = _claims(raw)
    if now_s >= claims.exp:
        raise TokenError("token expired")
    return claims


def _sign(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not text.isascii() or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _unverified_kid(raw: bytes) -> str | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    kid = obj.get("kid") if isinstance(obj, dict) else None
    return kid if isinstance(kid, str) else None


def _claims(raw: bytes) -> Claims:
    """Claims from signed JSON. Only our own `issue` signs, so a problem here means a bug
    or a secret shared with something else; still refused as malformed, never trusted."""
    try:
        obj = json.loads(raw)
    except ValueError:
        raise TokenError("malformed token") from None
    if not isinstance(obj, dict):
        raise TokenError("malformed token")
    role, player_id, iat, exp, kid = (obj.get(k) for k in ("role", "player_id", "iat", "exp", "kid"))
    ok = (
        role in ROLES
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp))
        and isinstance(kid, str)
        and (player_id is None if role == "admin" else isinstance(player_id, str) and bool(ID_PATTERN.fullmatch(player_id)))
    )
    if not ok:
        raise TokenError("malformed token")
    return Claims(role=role, player_id=player_id, iat=iat, exp=exp, kid=kid)
