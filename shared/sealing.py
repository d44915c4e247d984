"""Field-level encryption of personal data that has to travel between services.

Each help request has its own data key (AES-256-GCM), held only by intake. What leaves intake
in an event is sealed with it; routing asks intake for the key only to serve a handover to the
entitled agency. Destroying the key (erasure, end of retention) makes every copy unreadable,
including the ones that stay in Kafka's log (crypto-shredding)."""

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class CannotUnseal(Exception):
    pass


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, value: dict[str, Any], *, bound_to: str) -> str:
    """Encrypt `value`; `bound_to` (the help request id) must match when unsealing."""
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, json.dumps(value).encode(), bound_to.encode())
    return base64.urlsafe_b64encode(nonce + ciphertext).decode()


def unseal(key: bytes, sealed: str, *, bound_to: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], bound_to.encode()))
    except (InvalidTag, ValueError) as exc:
        raise CannotUnseal("sealed data cannot be opened with this key") from exc
