"""Google Play real-time developer notifications, pushed by Pub/Sub (facts 4.1-4.4).

A notification only names a purchase token; the purchase's full state comes from the
Play Developer API, fetched through `PlayClient` and kept beside the notification.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from google.auth import exceptions as google_errors
from google.auth import jwt as google_jwt

from ingress.errors import IngressError

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


class PushAuth(Protocol):
    def check(self, authorization: str | None, token: str | None) -> None: ...


class SharedSecretAuth:
    """The push endpoint URL carries `?token=<secret>` (or a Bearer header does)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def check(self, authorization: str | None, token: str | None) -> None:
        given = token or (authorization or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(given.encode(), self._secret):
            raise IngressError(
                401,
                "not_authenticated",
                "non_field_errors",
                "Authentication credentials were not provided.",
            )


class OidcAuth:
    """The push subscription's OIDC token: Google-signed, for this audience and account."""

    def __init__(
        self, audience: str, service_account: str | None, certs: Callable[[], Mapping[str, str]]
    ) -> None:
        self._audience, self._account, self._certs = audience, service_account, certs

    def check(self, authorization: str | None, token: str | None) -> None:
        bearer = (authorization or "").removeprefix("Bearer ").strip()
        if not bearer:
            raise IngressError(
                401,
                "not_authenticated",
                "non_field_errors",
                "Authentication credentials were not provided.",
            )
        try:
            claims = google_jwt.decode(  # type: ignore[no-untyped-call]
                bearer, certs=dict(self._certs()), audience=self._audience
            )
        except (ValueError, google_errors.GoogleAuthError) as error:
            raise IngressError(
                401,
                "not_authenticated",
                "non_field_errors",
                f"the push token does not verify: {error}",
            ) from error
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise IngressError(
                401,
                "not_authenticated",
                "non_field_errors",
                "the push token was not issued by Google",
            )
        if self._account and (
            claims.get("email") != self._account or not claims.get("email_verified")
        ):
            raise IngressError(
                401,
                "not_authenticated",
                "non_field_errors",
                "the push token is not the configured service account's",
            )


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


class GoogleCerts:
    """Google's token-signing certificates, fetched and kept for an hour."""

    def __init__(self, url: str = GOOGLE_CERTS_URL, ttl_seconds: float = 3600) -> None:
        self._url, self._ttl = url, ttl_seconds
        self._certs: Mapping[str, str] = {}
        self._fetched = float("-inf")

    def __call__(self) -> Mapping[str, str]:
        import time

        import requests

        if time.monotonic() - self._fetched > self._ttl:
            response = requests.get(self._url, timeout=10)
            response.raise_for_status()
            self._certs, self._fetched = response.json(), time.monotonic()
        return self._certs


class PlayClient(Protocol):
    """The Play Developer API calls ingress needs (purchases.subscriptionsv2, productsv2)."""

    def subscription(self, package: str, token: str) -> dict[str, Any]: ...

    def product(self, package: str, token: str) -> dict[str, Any]: ...


class GooglePlayClient:
    """The real client: google-api-python-client with a service account's credentials.

    Its HTTP transport (httplib2) must not be shared between threads, and ingress calls
    from a thread pool: each thread builds its own service object, once."""

    def __init__(self, credentials: Any, endpoint: str | None = None) -> None:
        self._credentials = credentials
        self._endpoint = endpoint
        self._local = threading.local()
        self._services: list[Any] = []
        self._lock = threading.Lock()
        self._build()  # fails here, at start, if the discovery document cannot be read

    def _build(self) -> Any:
        from googleapiclient.discovery import build

        service = build(
            "androidpublisher",
            "v3",
            credentials=self._credentials,
            static_discovery=True,
            cache_discovery=False,
            # Another server speaking the same API (the simulator's stand-in).
            client_options={"api_endpoint": self._endpoint} if self._endpoint else None,
        )
        with self._lock:
            self._services.append(service)
        self._local.purchases = purchases = service.purchases()
        return purchases

    @property
    def _purchases(self) -> Any:
        return getattr(self._local, "purchases", None) or self._build()

    def close(self) -> None:
        """Close every thread's connections."""
        with self._lock:
            services, self._services = self._services, []
        for service in services:
            service.close()

    def subscription(self, package: str, token: str) -> dict[str, Any]:
        request = self._purchases.subscriptionsv2().get(packageName=package, token=token)
        return dict(request.execute())

    def product(self, package: str, token: str) -> dict[str, Any]:
        request = self._purchases.productsv2().getproductpurchasev2(
            packageName=package, token=token
        )
        return dict(request.execute())


def decode_push(envelope: Any, package: str) -> tuple[str, dict[str, Any]]:
    """The Pub/Sub message id and the decoded developer notification."""
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise IngressError(400, "validation_error", "message", "message is required")
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise IngressError(
            400, "validation_error", "message.messageId", "message.messageId is required"
        )
    try:
        notification = orjson.loads(base64.b64decode(message.get("data") or "", validate=True))
    except (binascii.Error, ValueError) as error:
        raise IngressError(
            400,
            "validation_error",
            "message.data",
            "message.data is not base64 of a JSON notification",
        ) from error
    if not isinstance(notification, dict):
        raise IngressError(
            400, "validation_error", "message.data", "message.data is not a notification"
        )
    if notification.get("packageName") != package:
        raise IngressError(
            400, "invalid_package", "packageName", "the notification is for another app"
        )
    for kind in NOTIFICATION_KINDS:
        if kind in notification and not isinstance(notification[kind], dict):
            raise IngressError(400, "validation_error", kind, f"{kind} must be an object")
    return message_id, notification


NOTIFICATION_KINDS = (
    "subscriptionNotification",
    "oneTimeProductNotification",
    "voidedPurchaseNotification",
    "testNotification",
)


def purchase_token(notification: dict[str, Any]) -> str | None:
    for kind in NOTIFICATION_KINDS[:3]:
        token = (notification.get(kind) or {}).get("purchaseToken")
        if token:
            return str(token)
    return None
