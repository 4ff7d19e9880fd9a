"""Zapier fetch_zaps against its emulator: offset pages by links.next, errors in JSON:API form."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import ProviderError, RateLimited, TokenExpired


def _zaps(n):
    return [
        {
            "type": "zap",
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "title": f"Zap {i}",
            "is_enabled": i % 2 == 0,
            "last_successful_run_date": "2026-03-01T00:00:00Z" if i % 3 else None,
            "updated_at": "2026-02-01T00:00:00Z",
            "links": {"html_editor": f"https://zapier.com/editor/{i}"},
            "steps": [
                {"action": {"app": {"title": "Gmail"}}, "inputs": {"body": "q" * 400}},
                {"action": {"app": {"title": "Slack"}}},
                {"action": {"app": {"title": "Gmail"}}},
            ],
        }
        for i in range(205)
    ]


def test_zapier_reads_every_zap_by_offset(fresh_emulators):
    fresh_emulators["ZAPIER"].set_records("zaps", _zaps(205))
    token = mint(fresh_emulators, "ZAPIER", ["zap", "profile"])
    pages, calls = read_all(fresh_emulators, "ZAPIER", "fetch_zaps", token=token)
    assert calls == 3 and fresh_emulators["ZAPIER"].calls["zaps"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 5]
    assert [p.resume for p in pages] == [{"offset": 100}, {"offset": 200}, None]
    assert [i.external_id for p in pages for i in p.items] == [z["id"] for z in _zaps(205)]
    assert pages[2].items[4].data == {
        "id": "00000000-0000-4000-8000-000000000204",
        "title": "Zap 204",
        "enabled": True,
        "lastSuccessfulRunAt": None,
        "updatedAt": "2026-02-01T00:00:00Z",
        "steps": 3,
        "apps": ["Gmail", "Slack"],
        "url": "https://zapier.com/editor/204",
    }
    rest, calls = read_all(fresh_emulators, "ZAPIER", "fetch_zaps", token=token, resume=pages[0].resume)
    assert calls == 2 and rest[0].items[0].data["title"] == "Zap 100"


def test_zapier_refused_token_throttle_and_missing_scope(fresh_emulators):
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "ZAPIER", "fetch_zaps", token="not-a-token")
    token = mint(fresh_emulators, "ZAPIER", ["zap"])
    fresh_emulators["ZAPIER"].rate_limit_next("zaps", retry_after=9)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "ZAPIER", "fetch_zaps", token=token)
    assert limited.value.retry_after == 9
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "ZAPIER", "fetch_zaps", token=mint(fresh_emulators, "ZAPIER", ["profile"]))
    assert not isinstance(caught.value, TokenExpired)
    assert "403" in caught.value.message and "zap scope" in caught.value.message
