"""Secrets at rest: AES-256-GCM under an operator key (``FREEZEDESK_SECRET_KEY``).

A sealed value is ``fdenc:v1:<key id>:<base64url(nonce | ciphertext | tag)>``. The key id is the
first 8 hex digits of a hash of the key, so it names the key without revealing it and no id has to
be configured: to rotate, make the new key ``FREEZEDESK_SECRET_KEY`` and list the old one in
``FREEZEDESK_SECRET_KEY_PREVIOUS``; values sealed under the old key still open, and start-up
re-seals them under the new one (``notify.webhooks.seal_stored_secrets``). Each value is bound to
its context (the row it belongs to) as associated data, so a sealed value copied to another row
does not open. Key material never appears in messages, logs or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes

PREFIX = "fdenc"
VERSION = "v1"
_NONCE = 12
_TAG = 16
_SEALED = re.compile(r"^fdenc:v1:([0-9a-f]{8}):([A-Za-z0-9_-]+={0,2})$")


class SecretKeyError(Exception):
    """The operator key is missing, malformed or not the one the stored secrets were sealed with."""


def parse_key(text: str, name: str = "FREEZEDESK_SECRET_KEY") -> bytes:
    """32 bytes as 64 hex digits or base64 (standard or URL-safe, padding optional)."""
    raw = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        return bytes.fromhex(raw)
    try:
        key = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        # never echo the value: it is (or is close to) key material
        raise SecretKeyError(f"{name} must be 32 random bytes written as 64 hex digits or base64 "
                             "(generate one with: python -c 'import secrets; print(secrets.token_hex(32))')")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"freezedesk secret key id\x00" + key).hexdigest()[:8]


def is_sealed(value: str | None) -> bool:
    return value is not None and _SEALED.match(value) is not None


def sealed_key_id(value: str) -> str | None:
    match = _SEALED.match(value)
    return match.group(1) if match else None


def idempotent_response_context(api_key_id: str, idempotency_key: str) -> str:
    return f"idempotency:{api_key_id}:{idempotency_key}"


def webhook_secret_context(webhook_id: str) -> str:
    return f"webhook-secret:{webhook_id}"


class SecretBox:
    """Seals with the current key; opens with the current or any previous key."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self._current = current
        self.current_key_id = key_id(current)
        self._keys = {key_id(k): k for k in previous}
        self._keys[self.current_key_id] = current

    def __repr__(self) -> str:
        return f"SecretBox(current_key_id={self.current_key_id!r}, key_ids={sorted(self._keys)!r})"

    @classmethod
    def from_settings(cls, key: str | None, previous: Iterable[str] = ()) -> SecretBox | None:
        """None when no key is configured (webhooks cannot be registered then)."""
        previous = [p for p in previous if p.strip()]
        if not key or not key.strip():
            if previous:
                raise SecretKeyError("FREEZEDESK_SECRET_KEY_PREVIOUS is set but FREEZEDESK_SECRET_KEY is not")
            return None
        return cls(parse_key(key), [parse_key(p, "FREEZEDESK_SECRET_KEY_PREVIOUS") for p in previous])

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    def seal(self, plaintext: str, context: str) -> str:
        nonce = get_random_bytes(_NONCE)
        cipher = AES.new(self._current, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(self._aad(self.current_key_id, context))
        ciphertext, tag = cipher.encrypt_and_digest(plaintext.encode())
        blob = base64.urlsafe_b64encode(nonce + ciphertext + tag).decode()
        return f"{PREFIX}:{VERSION}:{self.current_key_id}:{blob}"

    def open(self, sealed: str, context: str) -> str:
        match = _SEALED.match(sealed)
        if match is None:
            raise SecretKeyError("the stored value is not a sealed secret")
        kid, blob = match.groups()
        key = self._keys.get(kid)
        if key is None:
            raise SecretKeyError(f"the secret was sealed with key id {kid}, which is not configured "
                                 "(FREEZEDESK_SECRET_KEY / FREEZEDESK_SECRET_KEY_PREVIOUS)")
        try:
            data = base64.urlsafe_b64decode(blob)
            nonce, body = data[:_NONCE], data[_NONCE:]
            cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
            cipher.update(self._aad(kid, context))
            plaintext = cipher.decrypt_and_verify(body[:-_TAG], body[-_TAG:])
        except (ValueError, binascii.Error):
            raise SecretKeyError(f"a secret sealed with key id {kid} does not open: "
                                 "it was altered or belongs to another record") from None
        return plaintext.decode()

    def needs_reseal(self, value: str) -> bool:
        """Stored in clear, or sealed under a previous key."""
        return sealed_key_id(value) != self.current_key_id

    @staticmethod
    def _aad(kid: str, context: str) -> bytes:
        return f"{PREFIX}:{VERSION}:{kid}:{context}".encode()


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def ensure_key_file(path: Path) -> bool:
    """Create ``path`` holding a new random key (mode 0600) unless it exists. True if created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as out:
        out.write(generate_key() + "\n")
    return True
