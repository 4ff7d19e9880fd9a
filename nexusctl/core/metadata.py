"""The bound on caller metadata (integrations, webhooks, OAuth flows): keys and bytes.

Metadata is free-form JSON kept on a row and shown in every list of those rows;
an OAuth flow's metadata also waits 10 minutes in Redis, which runs without
eviction. A 1 MB body of metadata per request was accepted (the key count
alone was bounded, and only at initiate), so the size is bounded too, at every
write, as PAYLOAD_TOO_LARGE.
"""

from __future__ import annotations

import json

from nexusctl.errors import PayloadTooLarge, UsageProblem

MAX_KEYS = 50
MAX_BYTES = 16 * 1024  # compact JSON, UTF-8; room for ids, labels and a sync schedule, not for documents


def check_metadata(metadata, field: str = "metadata") -> dict:
    """``metadata`` if it is a JSON object within the bounds; else VALIDATION_ERROR or PAYLOAD_TOO_LARGE."""
    if not isinstance(metadata, dict):
        raise UsageProblem(f"{field} must be a JSON object", field=field)
    if len(metadata) > MAX_KEYS:
        raise PayloadTooLarge(f"{field} has {len(metadata)} keys; at most {MAX_KEYS} are kept", field=field)
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size > MAX_BYTES:
        raise PayloadTooLarge(f"{field} is {size} bytes as JSON; at most {MAX_BYTES} are kept", field=field)
    return metadata
