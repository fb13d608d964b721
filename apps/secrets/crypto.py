"""Encryption of project secrets with the app's key: Fernet, with its key derived from SECRET_KEY by
HKDF (so the Fernet key is not SECRET_KEY itself, and other uses of SECRET_KEY cannot be turned into it).
Rotating SECRET_KEY makes saved secrets unreadable: they must then be typed again."""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

INFO = b"atelier project secrets v1"


class SecretUnreadable(ValueError):
    """The stored value cannot be decrypted (SECRET_KEY changed since it was saved)."""


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> bytes:
    return _fernet(settings.SECRET_KEY).encrypt(value.encode())


def decrypt(token: bytes | memoryview) -> str:
    try:
        return _fernet(settings.SECRET_KEY).decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "The secret cannot be read with this server's key (SECRET_KEY changed?): save it again."
        ) from exc
