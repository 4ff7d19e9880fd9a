"""The spec's enumerations, shared by the database, the providers and the API."""

from __future__ import annotations

import enum

from nexusctl.errors import InvalidProvider, UsageProblem


class Provider(str, enum.Enum):
    """The spec's IntegrationProvider enum (value = name, as stored and shown)."""

    TIKTOK = "TIKTOK"
    INSTAGRAM = "INSTAGRAM"
    FACEBOOK = "FACEBOOK"
    YOUTUBE = "YOUTUBE"
    TWITTER = "TWITTER"
    LINKEDIN = "LINKEDIN"
    HUBSPOT = "HUBSPOT"
    SALESFORCE = "SALESFORCE"
    SHOPIFY = "SHOPIFY"
    WOOCOMMERCE = "WOOCOMMERCE"
    META_ADS = "META_ADS"
    GOOGLE_ADS = "GOOGLE_ADS"
    TIKTOK_ADS = "TIKTOK_ADS"
    MAILCHIMP = "MAILCHIMP"
    SENDGRID = "SENDGRID"
    STRIPE = "STRIPE"
    PAYPAL = "PAYPAL"
    ZAPIER = "ZAPIER"
    SLACK = "SLACK"
    DISCORD = "DISCORD"

    @classmethod
    def parse(cls, value: str) -> "Provider":
        """Accept any case (`instagram`, `INSTAGRAM`); anything else is INVALID_PROVIDER."""
        return _parse(cls, value, "provider", InvalidProvider)


class DeliveryStatus(str, enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    RETRYING = "RETRYING"


class SyncStatus(str, enum.Enum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @classmethod
    def parse(cls, value: str) -> "SyncStatus":
        return _parse(cls, value, "sync status", UsageProblem, field="status")


def _parse(cls, value, label: str, error: type[UsageProblem], **details):
    """An enum member from any-case text, or a usage error listing the choices."""
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).strip().upper())
    except ValueError:
        choices = ", ".join(member.value for member in cls)
        raise error(f"unknown {label} {value!r}; expected one of: {choices}", **details) from None
