"""Every failure the service reports on purpose.

Each class carries the spec's error ``code``, the ``http_status`` the daemon
answers with and the ``exit_code`` the CLI ends with; the class docstring is
the default message. Errors are rendered in exactly two places: the CLI's
error boundary (``nexusctl.cli.main``) and the daemon's error middleware.

    NexusError
    ├── UsageProblem            VALIDATION_ERROR        400  exit 2
    │   └── InvalidProvider     INVALID_PROVIDER        400  exit 2
    ├── ConfigError             CONFIG_ERROR            500  exit 3
    ├── DatabaseUnavailable     DATABASE_UNAVAILABLE    503  exit 4
    ├── RedisUnavailable        REDIS_UNAVAILABLE       503  exit 8
    ├── SchemaBehind            SCHEMA_OUTDATED         503  exit 5
    ├── ListenFailed            LISTEN_FAILED           500  exit 6
    ├── ChecksFailed            CHECKS_FAILED           500  exit 7
    ├── NotFound
    │   ├── IntegrationNotFound INTEGRATION_NOT_FOUND   404  exit 10
    │   ├── WebhookNotFound     WEBHOOK_NOT_FOUND       404  exit 11
    │   ├── SyncLogNotFound     SYNC_LOG_NOT_FOUND      404  exit 12
    │   └── DeliveryNotFound    DELIVERY_NOT_FOUND      404  exit 13
    ├── WebhookInactive         WEBHOOK_INACTIVE        409  exit 14
    ├── IntegrationInactive     INTEGRATION_INACTIVE    409  exit 15
    ├── DeliveryInFlight        DELIVERY_IN_FLIGHT      409  exit 16
    ├── OAuthFailed             OAUTH_FAILED            400  exit 20
    ├── TokenExpired            TOKEN_EXPIRED           401  exit 21
    ├── RefreshFailed           REFRESH_FAILED          401  exit 22
    ├── RateLimited             RATE_LIMITED            429  exit 23
    ├── SyncFailed              SYNC_FAILED             500  exit 24
    │   ├── SyncNotStarted      SYNC_NOT_STARTED        409  exit 27
    │   └── MissingScopes       MISSING_SCOPES          403  exit 28
    ├── ProviderError           PROVIDER_ERROR          502  exit 25
    ├── ProviderNotConfigured   PROVIDER_NOT_CONFIGURED 400  exit 26
    ├── DecryptionFailed        DECRYPTION_FAILED       500  exit 30
    │   └── KeyNotConfigured    ENCRYPTION_KEY_MISSING  503  exit 31
    ├── Unauthorized            UNAUTHORIZED            401  exit 40
    ├── Forbidden               FORBIDDEN               403  exit 41
    ├── PayloadTooLarge         PAYLOAD_TOO_LARGE       413  exit 42
    ├── RequestTimeout          REQUEST_TIMEOUT         408  exit 43
    └── DaemonStopping          DAEMON_STOPPING         503  exit 44

Messages must never contain a secret: callers pass identifiers, never values.
"""

from __future__ import annotations


class NexusError(Exception):
    """Something went wrong."""

    code = "INTERNAL_ERROR"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.message = message or (self.__doc__ or "").strip()
        # Details are safe, structured facts (ids, field names) for the API envelope.
        self.details = details
        super().__init__(self.message)


class UsageProblem(NexusError):
    """The request or the command line is not valid."""

    code = "VALIDATION_ERROR"
    http_status = 400
    exit_code = 2


class InvalidProvider(UsageProblem):
    """Unknown provider."""

    code = "INVALID_PROVIDER"


class ConfigError(NexusError):
    """The configuration is not valid."""

    code = "CONFIG_ERROR"
    exit_code = 3


class DatabaseUnavailable(NexusError):
    """The database cannot be reached."""

    code = "DATABASE_UNAVAILABLE"
    http_status = 503
    exit_code = 4


class RedisUnavailable(NexusError):
    """Redis (REDIS_URL) cannot be reached."""

    code = "REDIS_UNAVAILABLE"
    http_status = 503
    exit_code = 8


class SchemaBehind(NexusError):
    """The database schema is behind this version: run `nexusctl db migrate`."""

    code = "SCHEMA_OUTDATED"
    http_status = 503
    exit_code = 5


class ListenFailed(NexusError):
    """The daemon cannot listen on its address."""

    code = "LISTEN_FAILED"
    exit_code = 6


class ChecksFailed(NexusError):
    """`nexusctl doctor` found at least one failing check."""

    code = "CHECKS_FAILED"
    exit_code = 7


class NotFound(NexusError):
    """Not found."""

    code = "NOT_FOUND"
    http_status = 404
    exit_code = 10


class IntegrationNotFound(NotFound):
    """Integration not found."""

    code = "INTEGRATION_NOT_FOUND"
    exit_code = 10


class WebhookNotFound(NotFound):
    """Webhook not found."""

    code = "WEBHOOK_NOT_FOUND"
    exit_code = 11


class SyncLogNotFound(NotFound):
    """Sync log not found."""

    code = "SYNC_LOG_NOT_FOUND"
    exit_code = 12


class DeliveryNotFound(NotFound):
    """Webhook delivery not found."""

    code = "DELIVERY_NOT_FOUND"
    exit_code = 13


class WebhookInactive(NexusError):
    """The webhook is inactive: nothing is sent to it until it is enabled again."""

    code = "WEBHOOK_INACTIVE"
    http_status = 409
    exit_code = 14


class IntegrationInactive(NexusError):
    """The integration is inactive (deactivated, or its grant is gone): connect it again."""

    code = "INTEGRATION_INACTIVE"
    http_status = 409
    exit_code = 15


class DeliveryInFlight(NexusError):
    """A daemon holds the delivery (sending it, or about to) under a lease; try again once the lease runs out."""

    code = "DELIVERY_IN_FLIGHT"
    http_status = 409
    exit_code = 16


class OAuthFailed(NexusError):
    """OAuth authentication failed."""

    code = "OAUTH_FAILED"
    http_status = 400
    exit_code = 20


class TokenExpired(NexusError):
    """Access token expired."""

    code = "TOKEN_EXPIRED"
    http_status = 401
    exit_code = 21


class RefreshFailed(NexusError):
    """Token refresh failed."""

    code = "REFRESH_FAILED"
    http_status = 401
    exit_code = 22


class RateLimited(NexusError):
    """Provider rate limit hit."""

    code = "RATE_LIMITED"
    http_status = 429
    exit_code = 23

    @property
    def retry_after(self) -> int | None:
        """Seconds to wait, when the provider said (sent on as Retry-After)."""
        value = self.details.get("retry_after")
        return int(value) if isinstance(value, (int, float)) else None


class SyncFailed(NexusError):
    """Sync operation failed."""

    code = "SYNC_FAILED"
    exit_code = 24


class SyncNotStarted(SyncFailed):
    """A sync cannot start now: the same action is running, or the integration is inactive."""

    code = "SYNC_NOT_STARTED"
    http_status = 409
    exit_code = 27


class MissingScopes(SyncFailed):
    """The connection's grant lacks a scope the action needs: connect again and allow it."""

    code = "MISSING_SCOPES"
    http_status = 403
    exit_code = 28


class ProviderError(NexusError):
    """Provider API error."""

    code = "PROVIDER_ERROR"
    http_status = 502
    exit_code = 25


class ProviderNotConfigured(NexusError):
    """The provider has no client credentials configured."""

    code = "PROVIDER_NOT_CONFIGURED"
    http_status = 400
    exit_code = 26


class DecryptionFailed(NexusError):
    """A stored secret could not be decrypted."""

    code = "DECRYPTION_FAILED"
    exit_code = 30


class KeyNotConfigured(DecryptionFailed):
    """A stored secret is under an encryption key this process was not given (a key rotation is under way):
    restart it with the new ENCRYPTION_KEY / ENCRYPTION_OLD_KEYS. Nothing is wrong with the data."""

    code = "ENCRYPTION_KEY_MISSING"
    http_status = 503
    exit_code = 31


class Unauthorized(NexusError):
    """A valid bearer token is required."""

    code = "UNAUTHORIZED"
    http_status = 401
    exit_code = 40


class Forbidden(NexusError):
    """You may not do this."""

    code = "FORBIDDEN"
    http_status = 403
    exit_code = 41


class PayloadTooLarge(NexusError):
    """The request body is too large."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    exit_code = 42


class RequestTimeout(NexusError):
    """The request body did not arrive in time."""

    code = "REQUEST_TIMEOUT"
    http_status = 408
    exit_code = 43


class DaemonStopping(NexusError):
    """The daemon is stopping and the request did not finish within the time it gets."""

    code = "DAEMON_STOPPING"
    http_status = 503
    exit_code = 44

    @property
    def retry_after(self) -> int:
        """Seconds before sending it again (sent as Retry-After): another daemon, or this one restarted."""
        return 1


def all_error_classes() -> list[type[NexusError]]:
    """Every error class of this table, for docs and the exit-code table.

    Only the classes defined here: a subclass elsewhere (e.g. core.oauth_states.StateUnreadable) refines
    one of them for control flow and shares its code and exit code; what the docs list must not depend
    on which modules happen to be imported."""
    seen: list[type[NexusError]] = []
    stack: list[type[NexusError]] = [NexusError]
    while stack:
        cls = stack.pop(0)
        if cls.__module__ == __name__:
            seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
