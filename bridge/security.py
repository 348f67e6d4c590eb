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


class SecretBox:
    """Fernet encryption for shop secrets. The first key encrypts; every key decrypts, so a key can be
    rotated by putting the new one first and re-encrypting (see deploy/README.md)."""

    def __init__(self, keys: tuple[str, ...]):
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def open(self, token: bytes | None) -> str | None:
        return None if token is None else self._fernet.decrypt(token).decode()

    def rotate(self, token: bytes) -> bytes:
        return self._fernet.rotate(token)
