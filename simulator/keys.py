"""Development keys: what the simulator signs with and the dev stack trusts.

- An App Store signing chain. Apple's library verifies an ES256 JWS whose `x5c` holds
  leaf, intermediate and root (facts 3.1); this authority makes its own root, with the
  OIDs Apple's certificates carry (as Apple's own library tests do), and a service
  configured with that root (`SUBLEDGER_APPLE_ROOT_CERTIFICATES`) accepts what it signs.
- A Stripe webhook signing secret and a Google Play push secret.

`DevKeys.load_or_create(directory)` keeps them in files, so that the simulator and the
service it posts to, in separate processes, agree. For development only: production
trusts Apple's roots, Stripe's secret and Google's push tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LEAF_OID = "1.2.840.113635.100.6.11.1"
INTERMEDIATE_OID = "1.2.840.113635.100.6.2.1"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    oid: str | None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3650))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if oid is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00"), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class SigningAuthority:
    """Signs JWS as Apple does; the root is the certificate a verifier must trust."""

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    leaf_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    # Made from the keys when not given (given: loaded from a development directory).
    root: x509.Certificate = field(default=None)  # type: ignore[assignment]
    intermediate: x509.Certificate = field(default=None)  # type: ignore[assignment]
    leaf: x509.Certificate = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = _certificate(
                "Dev Root", self.root_key, "Dev Root", self.root_key, ca=True, oid=None
            )
        if self.intermediate is None:
            self.intermediate = _certificate(
                "Dev Intermediate",
                self.intermediate_key,
                "Dev Root",
                self.root_key,
                ca=True,
                oid=INTERMEDIATE_OID,
            )
        if self.leaf is None:
            self.leaf = _certificate(
                "Dev Leaf",
                self.leaf_key,
                "Dev Intermediate",
                self.intermediate_key,
                ca=False,
                oid=LEAF_OID,
            )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    def sign(self, claims: dict[str, Any]) -> str:
        chain = [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (self.leaf, self.intermediate, self.root)
        ]
        return jwt.encode(claims, self.leaf_key, algorithm="ES256", headers={"x5c": chain})


_KEYS = ("root", "intermediate", "leaf")


@dataclass
class DevKeys:
    authority: SigningAuthority
    stripe_secret: str
    google_push_secret: str
    directory: Path

    @classmethod
    def load_or_create(cls, directory: Path) -> DevKeys:
        """The keys in `directory`, made there on first use."""
        if not (directory / "secrets.json").exists():
            directory.mkdir(parents=True, exist_ok=True)
            authority = SigningAuthority()
            for name in _KEYS:
                key: ec.EllipticCurvePrivateKey = getattr(authority, f"{name}_key")
                certificate: x509.Certificate = getattr(authority, name)
                (directory / f"{name}.key.pem").write_bytes(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
                (directory / f"{name}.der").write_bytes(
                    certificate.public_bytes(serialization.Encoding.DER)
                )
            secrets_ = {
                "stripe": "whsec_" + secrets.token_urlsafe(24),
                "google_push": secrets.token_urlsafe(24),
            }
            (directory / "secrets.json").write_text(json.dumps(secrets_))
        return cls._load(directory)

    @classmethod
    def _load(cls, directory: Path) -> DevKeys:
        keys = {
            f"{name}_key": serialization.load_pem_private_key(
                (directory / f"{name}.key.pem").read_bytes(), password=None
            )
            for name in _KEYS
        }
        certificates = {
            name: x509.load_der_x509_certificate((directory / f"{name}.der").read_bytes())
            for name in _KEYS
        }
        authority = SigningAuthority(**keys, **certificates)  # type: ignore[arg-type]
        found = json.loads((directory / "secrets.json").read_text())
        return cls(authority, found["stripe"], found["google_push"], directory)

    @property
    def root_path(self) -> Path:
        return self.directory / "root.der"
