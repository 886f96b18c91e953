"""Key material the sandbox makes for itself: a throw-away TLS CA and the FCM service account.

Owns generation and serialisation only. Private keys stay in memory except the service-account
JSON, which must be a file because that is how hlfsync (and google-auth) take credentials.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# google-auth always puts this in the assertion's `aud`, whatever the JSON's token_uri says.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a password


@dataclass(frozen=True, slots=True)
class Tls:
    """A CA that exists for one sandbox run and the server certificate it signed."""

    ca: trustme.CA
    cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def write_ca(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(path))
        return path


def make_tls(*hosts: str) -> Tls:
    """A fresh CA and a certificate for localhost, 127.0.0.1, ::1 and any extra host names."""
    names = ["localhost", "127.0.0.1", "::1"]
    wildcard = ("0.0.0.0", "::", "")  # noqa: S104 - names to leave out of the certificate
    names += [host for host in hosts if host not in names and host not in wildcard]
    ca = trustme.CA(organization_name="hlfsync sandbox")
    return Tls(ca=ca, cert=ca.issue_cert(*names))


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A Google service account whose private key only this sandbox run knows."""

    project_id: str
    client_email: str
    client_id: str
    private_key_id: str
    private_key_pem: str
    public_key_pem: bytes

    def info(self, token_uri: str) -> dict[str, Any]:
        """The service-account JSON as the Google Cloud console downloads it."""
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "",
            "universe_domain": "googleapis.com",
        }

    def write(self, path: Path, token_uri: str) -> Path:
        """Write the JSON readable by the owner only: it holds a private key."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.info(token_uri), indent=2)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path


def make_service_account(project_id: str) -> ServiceAccount:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccount(
        project_id=project_id,
        client_email=f"hlfsync-sandbox@{project_id}.iam.gserviceaccount.com",
        client_id=str(secrets.randbelow(10**20)).rjust(21, "1"),
        private_key_id=secrets.token_hex(20),
        private_key_pem=private_pem,
        public_key_pem=public_pem,
    )
