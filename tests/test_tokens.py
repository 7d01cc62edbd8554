from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

import pytest

from thengine.errors import ThengineError
from thengine.tokens import (
    Claims,
    TokenError,
    decode_secret,
    encode_secret,
    issue,
    new_secret,
    secret_id,
    verify,
)

SECRET = bytes(range(32))
NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(secret: bytes, claims: object) -> str:
    """A token signed correctly around arbitrary claims (as a holder of the secret could)."""
    payload = b64(json.dumps(claims).encode())
    return payload + "." + b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def test_a_player_token_round_trips_its_claims() -> None:
    token = issue(SECRET, role="player", player_id="p1", ttl_s=60, now_s=NOW)
    assert verify(SECRET, token, now_s=NOW + 10) == Claims(
        role="player", player_id="p1", iat=NOW, exp=NOW + 60, kid=secret_id(SECRET)
    )


def test_an_admin_token_carries_no_player_id() -> None:
    token = issue(SECRET, role="admin", ttl_s=60, now_s=NOW)
    claims = verify(SECRET, token, now_s=NOW)
    assert (claims.role, claims.player_id) == ("admin", None)


def test_a_token_is_two_unpadded_base64url_parts() -> None:
    token = issue(SECRET, role="player", player_id="p.1:x-y_z", ttl_s=60, now_s=NOW)
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)


def test_a_token_is_valid_until_its_expiry_second() -> None:
    token = issue(SECRET, role="admin", ttl_s=60, now_s=NOW)
    verify(SECRET, token, now_s=NOW + 59)
    with pytest.raises(TokenError, match="^token expired$"):
        verify(SECRET, token, now_s=NOW + 60)


def test_changing_the_claims_breaks_the_signature() -> None:
    token = issue(SECRET, role="player", player_id="p1", ttl_s=60, now_s=NOW)
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(role="admin")
    claims.pop("player_id")
    forged = b64(json.dumps(claims).encode()) + "." + signature
    with pytest.raises(TokenError, match="^bad signature$"):
        verify(SECRET, forged, now_s=NOW)


def test_a_token_signed_by_someone_without_the_secret_is_refused() -> None:
    forged = signed(b"guessed secret, not the real one", {
        "role": "admin", "iat": NOW, "exp": NOW + 60, "kid": secret_id(SECRET)})
    with pytest.raises(TokenError, match="^bad signature$"):
        verify(SECRET, forged, now_s=NOW)


def test_rotating_the_secret_invalidates_earlier_tokens_and_says_so() -> None:
    old = issue(SECRET, role="admin", ttl_s=60, now_s=NOW)
    rotated = new_secret()
    with pytest.raises(TokenError, match="bad signature: the token was signed with another secret"):
        verify(rotated, old, now_s=NOW)
    verify(rotated, issue(rotated, role="admin", ttl_s=60, now_s=NOW), now_s=NOW)


@pytest.mark.parametrize("token", [
    "", "abc", "a.b.c", "!!!.???", "é.é", ".", "x" * 5000,
    b64(b'{"role":"admin"}') + ".",
    b64(b'{"role":"admin"}') + ".A",
])
def test_malformed_tokens_are_refused_as_malformed_or_unsigned(token: str) -> None:
    with pytest.raises(TokenError, match="^(malformed token|bad signature)$"):
        verify(SECRET, token, now_s=NOW)


@pytest.mark.parametrize("claims", [
    [1, 2],
    {"role": "root", "iat": NOW, "exp": NOW + 60, "kid": "k"},
    {"role": "player", "iat": NOW, "exp": NOW + 60, "kid": "k"},
    {"role": "admin", "player_id": "p1", "iat": NOW, "exp": NOW + 60, "kid": "k"},
    {"role": "admin", "iat": NOW, "exp": "later", "kid": "k"},
    {"role": "admin", "iat": True, "exp": NOW + 60, "kid": "k"},
])
def test_correctly_signed_but_invalid_claims_are_malformed(claims: object) -> None:
    with pytest.raises(TokenError, match="^malformed token$"):
        verify(SECRET, signed(SECRET, claims), now_s=NOW)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"role": "root"}, "role"),
    ({"role": "player"}, "player_id"),
    ({"role": "player", "player_id": "has space"}, "player_id"),
    ({"role": "admin", "player_id": "p1"}, "player_id"),
    ({"role": "admin", "ttl_s": 0}, "ttl_s"),
])
def test_issue_refuses_bad_arguments_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"ttl_s": 60, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}:"):
        issue(SECRET, now_s=NOW, **arguments)  # type: ignore[arg-type]


def test_token_errors_are_thengine_errors() -> None:
    assert issubclass(TokenError, ThengineError)


def test_a_secret_round_trips_through_its_stored_text() -> None:
    secret = new_secret()
    assert len(secret) == 32
    assert decode_secret(encode_secret(secret)) == secret


@pytest.mark.parametrize("text", ["not hex", "abcd"])
def test_a_damaged_stored_secret_is_refused(text: str) -> None:
    with pytest.raises(TokenError, match="rotate it"):
        decode_secret(text)
