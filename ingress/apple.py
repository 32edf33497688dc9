"""App Store Server Notifications V2: verified with Apple's app-store-server-library."""

from __future__ import annotations

import datetime as dt
from base64 import b64decode, urlsafe_b64decode
from typing import Any

import orjson
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
    _ChainVerifier,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ingress import jws
from ingress.errors import IngressError

_STATUS_MESSAGES = {
    VerificationStatus.VERIFICATION_FAILURE: "signature or certificate chain does not verify",
    VerificationStatus.INVALID_APP_IDENTIFIER: "bundle id or app Apple id is not this app's",
    VerificationStatus.INVALID_CERTIFICATE: "certificate is invalid",
    VerificationStatus.INVALID_CHAIN_LENGTH: "x5c must hold exactly three certificates",
    VerificationStatus.INVALID_CHAIN: "certificate chain is invalid",
    VerificationStatus.INVALID_ENVIRONMENT: "environment is not this deployment's",
    VerificationStatus.RETRYABLE_VERIFICATION_FAILURE: "verification failed, retry",
}


class _CachingChainVerifier(_ChainVerifier):
    """Verifies a certificate chain once, then only checks the signing date against it.

    Apple's library caches verified chains only with online (OCSP) checks. Offline, it
    would verify the whole X.509 chain for every signed object: three times per
    notification. The chain's result does not change, so it is kept, bounded, and each
    use still checks that the object was signed while every certificate was valid. The
    signature of each object is verified every time by the caller, with the leaf's public
    key kept loaded (PyJWT takes a key object as well as its PEM text, which it would
    otherwise parse for every signature).
    """

    LIMIT = 64

    def __init__(self, root_certificates: list[bytes]) -> None:
        super().__init__(root_certificates)
        self._verified: dict[tuple[str, ...], tuple[Any, float, float]] = {}

    def verify_chain(
        self, certificates: list[str], perform_online_checks: bool, effective_date: int
    ) -> Any:
        key = tuple(certificates)
        hit = self._verified.get(key)
        if hit is not None and not perform_online_checks:
            public_key, not_before, not_after = hit
            if not_before <= effective_date <= not_after:
                return public_key
            raise VerificationException(VerificationStatus.VERIFICATION_FAILURE)
        public_key = super().verify_chain(certificates, perform_online_checks, effective_date)
        validity = [x509.load_der_x509_certificate(b64decode(c)) for c in certificates]
        window = (
            max(c.not_valid_before_utc for c in validity).timestamp(),
            min(c.not_valid_after_utc for c in validity).timestamp(),
        )
        loaded = serialization.load_pem_public_key(public_key.encode())
        if len(self._verified) >= self.LIMIT:
            self._verified.clear()
        self._verified[key] = (loaded, *window)
        return loaded


class AppleVerifier:
    def __init__(
        self,
        root_certificates: list[bytes],
        environment: str,
        bundle_id: str,
        app_apple_id: int | None,
    ) -> None:
        jws.install()
        self._verifier = SignedDataVerifier(
            root_certificates, False, Environment(environment), bundle_id, app_apple_id
        )
        self._verifier._chain_verifier = _CachingChainVerifier(root_certificates)

    def verify(self, signed_payload: str) -> dict[str, Any]:
        """The notification's claims, with `data.transaction` and `data.renewal` decoded."""
        try:
            notification = self._verifier.verify_and_decode_notification(signed_payload)
            payload = _claims(signed_payload)
            data = payload.get("data")
            if notification.data is not None and isinstance(data, dict):
                signed_tx = data.get("signedTransactionInfo")
                if signed_tx:
                    self._verifier.verify_and_decode_signed_transaction(signed_tx)
                    data["transaction"] = _claims(signed_tx)
                signed_renewal = data.get("signedRenewalInfo")
                if signed_renewal:
                    self._verifier.verify_and_decode_renewal_info(signed_renewal)
                    data["renewal"] = _claims(signed_renewal)
            return payload
        except VerificationException as error:
            message = _STATUS_MESSAGES.get(error.status, "verification failed")
            raise IngressError(
                401 if error.status is VerificationStatus.VERIFICATION_FAILURE else 400,
                "invalid_signature",
                "signedPayload",
                message,
            ) from error


def _claims(token: str) -> dict[str, Any]:
    """The claims of a token the library has just verified: its payload segment, as JSON.

    Read directly rather than decoded by PyJWT a fourth time.
    """
    segment = token.split(".")[1]
    claims: dict[str, Any] = orjson.loads(urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


def signed_instant(payload: dict[str, Any]) -> dt.datetime | None:
    millis = payload.get("signedDate")
    return None if millis is None else dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
