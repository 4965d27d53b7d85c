"""TLS for the servers of `telemetry api`: the HTTP API (`--tls-cert/--tls-key`, served by uvicorn with
ssl_certfile/ssl_keyfile) and the gRPC servers (`--grpc-tls-cert/--grpc-tls-key`: TelemetryStream and the
OTLP/gRPC receiver, with grpc.ssl_server_credentials).

A pair is read and checked when the server starts, so a missing half, an unreadable file, a file that
is not PEM or a key that does not belong to the certificate is an error naming the option, not a
handshake that fails later on every client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ValidationError


@dataclass(frozen=True, slots=True)
class TlsPair:
    """A PEM certificate chain and its private key, read from files (`cert_path`, `key_path`)."""

    cert: bytes
    key: bytes
    cert_path: str
    key_path: str

    def server_credentials(self) -> Any:
        """The grpc.ServerCredentials that serve this pair (no client certificate asked for)."""
        import grpc

        return grpc.ssl_server_credentials([(self.key, self.cert)])


def _read(path: str, field: str, marker: bytes, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(field, f"a readable {what} file", path,
                              message=f"{field}: cannot read {path} ({exc.strerror or exc})") from None
    if b"-----BEGIN " not in data or marker not in data:
        raise ValidationError(field, f"a PEM {what}", path,
                              message=f"{field}: {path} is not a PEM {what} (no '-----BEGIN ...{marker.decode()}' "
                                      "line)")
    return data


def load_tls_pair(cert: str | None, key: str | None, *, cert_field: str = "api.grpc_tls_cert",
                  key_field: str = "api.grpc_tls_key") -> TlsPair | None:
    """Read a certificate and key pair; None when neither is given, an error naming the option otherwise.

    Half a pair, an unreadable or non-PEM file, and (when `cryptography` is installed) a key that does
    not match the certificate are ValidationErrors naming `cert_field` or `key_field`.
    """
    if not cert and not key:
        return None
    if not cert or not key:
        given, missing = (cert_field, key_field) if cert else (key_field, cert_field)
        raise ValidationError(missing, "a file (TLS needs both the certificate and its key)",
                              message=f"{missing}: missing; {given} was given, and TLS needs both the "
                                      "certificate and its private key")
    pair = TlsPair(_read(cert, cert_field, b"CERTIFICATE-----", "certificate"),
                   _read(key, key_field, b"PRIVATE KEY-----", "private key"), cert, key)
    _check_match(pair, cert_field, key_field)
    return pair


def _check_match(pair: TlsPair, cert_field: str, key_field: str) -> None:
    """Refuse a key that is not the certificate's (a server would only fail at each client's handshake)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # the crypto extra is optional: grpc still refuses garbage when it binds
        return
    try:
        certificate = x509.load_pem_x509_certificate(pair.cert)
    except ValueError as exc:
        raise ValidationError(cert_field, "a PEM certificate", pair.cert_path,
                              message=f"{cert_field}: {pair.cert_path} is not a valid certificate ({exc})") from None
    try:
        private = serialization.load_pem_private_key(pair.key, password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the key is encrypted; grpc cannot ask for a passphrase.
        raise ValidationError(key_field, "an unencrypted PEM private key", pair.key_path,
                              message=f"{key_field}: {pair.key_path} is not an unencrypted private key "
                                      f"({exc})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (certificate.public_key().public_bytes(serialization.Encoding.PEM, public)
            != private.public_key().public_bytes(serialization.Encoding.PEM, public)):
        raise ValidationError(key_field, f"the private key of {pair.cert_path}", pair.key_path,
                              message=f"{key_field}: {pair.key_path} is not the private key of the "
                                      f"certificate {pair.cert_path}")
