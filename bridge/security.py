"""Keys and secrets: API keys stored hashed, shop secrets encrypted at rest, signatures in constant time."""

from __future__ import annotations

import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet

API_KEY_PREFIX = "wb_"


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """API keys are 256 random bits, so a plain SHA-256 is enough (no dictionary to attack)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


OPENED_KEPT = 4096  # plaintexts a box remembers; a rotation leaves old tokens behind, so it is bounded


class SecretBox:
    """Fernet encryption for shop secrets. The first key encrypts; every key decrypts, so a key can be
    rotated by putting the new one first and re-encrypting (see deploy/README.md).

    A process opens the same tokens on every request (a shop's webhook secret), so it remembers each token's
    plaintext. That can never go stale: a token encrypts one plaintext forever, and a new secret (a rotation,
    a merchant's save, in any process) is stored as a new token, a miss here on the next read of the row."""

    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        self._opened: dict[bytes, str] = {}

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, token: bytes | None) -> str | None:
        if token is None:
            return None
        token = bytes(token)  # PostgreSQL's bytea arrives as memoryview, not hashable
        plaintext = self._opened.get(token)
        if plaintext is None:
            plaintext = self._fernet.decrypt(token).decode()
            if len(self._opened) >= OPENED_KEPT:
                self._opened.clear()
            self._opened[token] = plaintext
        return plaintext

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)
