"""Parsing identifiers given by users: a bad one is a usage error, not a crash."""

from __future__ import annotations

import uuid

from nexusctl.errors import UsageProblem


def parse_uuid(value, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except (ValueError, AttributeError, TypeError):
        raise UsageProblem(f"{field} must be a UUID, got {str(value)[:64]!r}", field=field) from None
