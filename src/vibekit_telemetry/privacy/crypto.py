"""Encryption at rest: AES-256-GCM of label, stream data and metadata, with the key id in every value.

Where it lives (and why): values are encrypted in the SQL store's write path (SQLStore._write, the
row mapping) and decrypted in its read mapping (read.row_to_event / row_to_session). So the event
bus, live streams, exporters' own destinations and a second store see the same plaintext events
as before: only the bytes at rest change, and every read (query, iter_events, sessions, the change
log exporters follow) decrypts in one place. Session, category, type and time stay in clear, so the
filters and indexes on them keep working; `contains` and metadata filters cannot see into encrypted
values.

A stored value is `vkenc1:<key id>:<base64(nonce | ciphertext | tag)>`; metadata keeps JSON shape
(`{"_vkenc": "vkenc1:…"}`) so JSON functions over the column do not fail. Keys are registered in a
process-wide keyring by id, so a value encrypted under an old key is read as long as that key is
given (`old_keys`), and `telemetry keys rotate` re-encrypts under the current one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from ..errors import StoreError, ValidationError
from ..events import TelemetryEvent, encode_json

PREFIX: Final = "vkenc1:"
META_PREFIX: Final = '{"_vkenc": "'
ENV_KEY: Final = "TELEMETRY_ENCRYPTION_KEY"
ENV_PASSPHRASE: Final = "TELEMETRY_ENCRYPTION_PASSPHRASE"
ENV_ENABLED: Final = "TELEMETRY_ENCRYPTION_ENABLED"
ENV_OLD_KEYS: Final = "TELEMETRY_ENCRYPTION_OLD_KEYS"  # comma-separated, for reading during a rotation
_NONCE: Final = 12
# scrypt cost: n=2**15, r=8 takes ~0.1 s and 32 MB once per process; the salt lives in store_meta.
_SCRYPT_N: Final = 2**15
_SALT_KEYS: Final = ("kdf_salt_0", "kdf_salt_1")


class EncryptionKeyError(StoreError):
    """A stored value cannot be decrypted: no key, a wrong key, or a tampered value."""


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # the extra is not installed
        raise StoreError("encryption at rest needs the cryptography package: "
                         "pip install 'vibekit-telemetry[crypto]'") from None
    return AESGCM


def key_id(key: bytes) -> str:
    """Return the short id stored beside each value encrypted with key (not enough to find the key)."""
    return hashlib.sha256(b"vibekit-telemetry key id\x00" + key).hexdigest()[:8]


def parse_key(text: str, field: str = "security.encryption.key") -> bytes:
    """Return the 32 bytes of a 64-hex-character key; ValidationError names the field otherwise."""
    cleaned = text.strip()
    if len(cleaned) != 64:
        raise ValidationError(field, "64 hex characters (32 bytes: `openssl rand -hex 32`)", f"{len(cleaned)} chars")
    try:
        return binascii.unhexlify(cleaned)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "64 hex characters (32 bytes: `openssl rand -hex 32`)", "non-hex text") from None


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """Stretch a passphrase into a 32-byte key with scrypt and the store's salt."""
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=8, p=1, maxmem=64 * 1024 * 1024,
                          dklen=32)


class Keyring:
    """Every key this process knows, by id; decrypts whatever a store holds, whichever key wrote it."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, key: bytes) -> str:
        """Register a key; return its id."""
        kid = key_id(key)
        with self._lock:
            if kid not in self._keys:
                self._keys[kid] = _aesgcm()(key)
        return kid

    def aead(self, kid: str) -> Any:
        """Return the cipher of key id kid, or raise EncryptionKeyError saying which key is missing."""
        found = self._keys.get(kid)
        if found is None:
            known = ", ".join(sorted(self._keys)) or "none"
            raise EncryptionKeyError(
                f"value encrypted with key id {kid}, but that key is not configured (known key ids: {known}); "
                f"set {ENV_KEY} (or security.encryption.key / old_keys) to the key that wrote it")
        return found

    def encrypt(self, kid: str, text: str, column: str) -> str:
        """Return text encrypted under key kid, bound to its column (a value moved elsewhere fails)."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = self.aead(kid).encrypt(nonce, text.encode("utf-8", "surrogatepass"), column.encode())
        return f"{PREFIX}{kid}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, value: str, column: str) -> str:
        """Return the plaintext of a stored value (values without the prefix are returned as they are)."""
        if not value.startswith(PREFIX):
            return value
        kid, _, data = value[len(PREFIX):].partition(":")
        aead = self.aead(kid)
        try:
            raw = base64.b64decode(data, validate=True)
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], column.encode()).decode("utf-8", "surrogatepass")  # type: ignore[no-any-return]
        except Exception as exc:  # InvalidTag, bad base64: never hand back garbage
            raise EncryptionKeyError(f"stored {column} value failed authentication under key id {kid} "
                                     f"(tampered, or not written by this key): {type(exc).__name__}") from None


KEYRING: Final = Keyring()


def decrypt_text(value: str | None, column: str) -> str | None:
    """Read mapping: the plaintext of a label / stream_data column value."""
    if value is None or not value.startswith(PREFIX):
        return value
    return KEYRING.decrypt(value, column)


def decrypt_meta(value: str | None) -> str | None:
    """Read mapping: the plaintext JSON of a metadata column value."""
    if value is None or not value.startswith(META_PREFIX):
        return value
    return KEYRING.decrypt(json.loads(value)["_vkenc"], "metadata")


def encrypt_meta(kid: str, value: str | None) -> str | None:
    """Write mapping: a metadata JSON text encrypted, kept as a JSON object."""
    if value is None:
        return None
    return json.dumps({"_vkenc": KEYRING.encrypt(kid, value, "metadata")})


class StoreEncryption:
    """What a store needs to encrypt its writes: resolved keys, registered at open (salt read there)."""

    def __init__(self, *, key: str | None = None, passphrase: str | None = None, old_keys: Sequence[str] = (),
                 encrypt_writes: bool = True) -> None:
        if key is None and passphrase is None:
            raise ValidationError("security.encryption.key", f"a key ({ENV_KEY}, 64 hex chars) or a passphrase")
        self._key = parse_key(key) if key is not None else None
        self._passphrase = passphrase
        self._old = [parse_key(k, f"security.encryption.old_keys[{i}]") for i, k in enumerate(old_keys)]
        self.encrypt_writes = encrypt_writes
        self.kid: str | None = None

    def open(self, engine: Any) -> None:
        """Register the keys (deriving the passphrase key with the store's salt, created on first use)."""
        _aesgcm()
        key = self._key if self._key is not None else derive_key(self._passphrase or "", store_salt(engine))
        self.kid = KEYRING.add(key)
        for old in self._old:
            KEYRING.add(old)

    def encrypt_batch(self, batch: Sequence[TelemetryEvent]) -> list[TelemetryEvent]:
        """Return copies of the events with label, stream_data and metadata encrypted (originals untouched)."""
        kid = self.kid
        if kid is None or not self.encrypt_writes:
            return list(batch)
        enc = KEYRING.encrypt
        return [replace(e, label=enc(kid, e.label, "label") if e.label is not None else None,
                        stream_data=enc(kid, e.stream_data, "stream_data") if e.stream_data is not None else None,
                        metadata_json=encrypt_meta(kid, e.metadata_json if e.metadata_json is not None
                                                   else encode_json("metadata", e.metadata)),
                        context_json=e.context_json)
                for e in batch]


def store_salt(engine: Any) -> bytes:
    """Return the store's scrypt salt (14 random bytes in store_meta), creating it on first use."""
    from sqlalchemy import select

    from ..store.schema import store_meta

    with engine.begin() as conn:
        rows = dict(conn.execute(select(store_meta.c.key, store_meta.c.value)
                                 .where(store_meta.c.key.in_(_SALT_KEYS))).all())
        if len(rows) < 2:
            fresh = [int.from_bytes(os.urandom(7), "big") for _ in _SALT_KEYS]
            conn.execute(store_meta.delete().where(store_meta.c.key.in_(_SALT_KEYS)))
            conn.execute(store_meta.insert(), [{"key": k, "value": v} for k, v in zip(_SALT_KEYS, fresh, strict=True)])
            rows = dict(zip(_SALT_KEYS, fresh, strict=True))
    return b"".join(int(rows[k]).to_bytes(7, "big") for k in _SALT_KEYS)


def from_config(encryption: Any) -> StoreEncryption | None:
    """Return the StoreEncryption a config's security.encryption (and the environment) asks for, or None.

    A key given without `enabled` still lets the store read encrypted values (writes stay plain).
    """
    key = encryption.key or os.environ.get(ENV_KEY) or None
    passphrase = encryption.passphrase or os.environ.get(ENV_PASSPHRASE) or None
    enabled = encryption.enabled or os.environ.get(ENV_ENABLED, "").strip().lower() in ("1", "true", "yes", "on")
    if enabled and key is None and passphrase is None:
        raise ValidationError("security.encryption.key",
                              f"a key in {ENV_KEY} (64 hex chars) or a passphrase when encryption is enabled")
    if key is None and passphrase is None:
        return None
    old = [*encryption.old_keys, *(k for k in os.environ.get(ENV_OLD_KEYS, "").split(",") if k.strip())]
    return StoreEncryption(key=key, passphrase=passphrase, old_keys=old, encrypt_writes=enabled)
