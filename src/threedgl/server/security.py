"""Tokens: generation, hashing, constant-time comparison.

Client tokens are ``secrets.token_urlsafe(32)`` (256 random bits) and are stored only as
their sha256 hex digest. Because they are random and long, a fast unsalted hash is
safe here (nothing to brute-force); a human password would need a slow salted hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32

#: Compared against when no client has the presented hash, so a lookup that misses costs
#: the same as one that hits.
_DUMMY_SHA256 = hashlib.sha256(b"threedgl: no such client").hexdigest()


def new_token() -> str:
    """A fresh client token (43 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hashes_match(stored: str | None, presented: str) -> bool:
    """Constant-time comparison of a stored hash (or none: compare to a dummy) with one presented."""
    ok = hmac.compare_digest(stored if stored is not None else _DUMMY_SHA256, presented)
    return ok and stored is not None


def is_admin_token(presented: str, admin_secret: str) -> bool:
    """Constant-time check of the admin secret (hashes first, so lengths leak nothing)."""
    return hmac.compare_digest(token_sha256(presented), token_sha256(admin_secret))
