"""Mailchimp (offset/total_items on the data centre's host) and SendGrid (_metadata.next page tokens)."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import ProviderError, RateLimited, TokenExpired


def mc_metadata(emulators, dc="us19") -> dict:
    return {"dc": dc, "apiEndpoint": f"{emulators.base_url}/mailchimp/{dc}.api.mailchimp.com"}


def _lists(n):
    # Stored newest first; the action asks for date_created ascending.
    return [
        {
            "id": f"{i:010x}",
            "web_id": 1000 + i,
            "name": f"Audience {i}",
            "visibility": "prv",
            "date_created": f"2025-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}T08:00:00+00:00"
            if i < 300
            else f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00+00:00",
            "stats": {"member_count": i * 3, "unsubscribe_count": 1, "cleaned_count": 0, "last_sub_date": ""},
            "contact": {"company": "Demo", "address1": "1 Main St"},
        }
        for i in reversed(range(1120))
    ]


def test_mailchimp_lists_every_page_oldest_first(fresh_emulators):
    rows = _lists(1120)
    fresh_emulators["MAILCHIMP"].set_records("lists", rows)
    token = mint(fresh_emulators, "MAILCHIMP", [])
    pages, calls = read_all(
        fresh_emulators, "MAILCHIMP", "fetch_lists", token=token, metadata=mc_metadata(fresh_emulators)
    )
    assert calls == 3 and fresh_emulators["MAILCHIMP"].calls["lists"] == 3
    assert [len(p.items) for p in pages] == [500, 500, 120]
    assert [p.resume for p in pages] == [{"offset": 500}, {"offset": 1000}, None]
    expected = [r["id"] for r in sorted(rows, key=lambda r: r["date_created"])]
    assert [i.external_id for p in pages for i in p.items] == expected
    item = next(i for p in pages for i in p.items if i.external_id == f"{7:010x}")
    assert item.data["members"] == 21 and item.data["name"] == "Audience 7" and "contact" not in item.data


def test_mailchimp_campaigns_resume_from_an_offset(fresh_emulators):
    fresh_emulators["MAILCHIMP"].set_records(
        "campaigns",
        [
            {
                "id": f"c{i:05d}",
                "web_id": i,
                "type": "regular",
                "status": "sent" if i < 600 else "save",
                "create_time": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}+00:00",
                "send_time": "",
                "emails_sent": i,
                "settings": {"title": f"Newsletter {i}", "subject_line": f"News {i}"},
                "recipients": {"list_id": "abc"},
            }
            for i in range(700)
        ],
    )
    token = mint(fresh_emulators, "MAILCHIMP", [])
    pages, calls = read_all(
        fresh_emulators,
        "MAILCHIMP",
        "fetch_campaigns",
        token=token,
        metadata=mc_metadata(fresh_emulators),
        resume={"offset": 500},
    )
    assert calls == 1 and len(pages) == 1 and pages[0].resume is None
    assert pages[0].items[0].external_id == "c00500" and len(pages[0].items) == 200
    assert pages[0].items[150].data == {
        "id": "c00650",
        "webId": 650,
        "type": "regular",
        "status": "save",
        "title": "Newsletter 650",
        "subject": "News 650",
        "listId": "abc",
        "createdAt": "2026-01-01T00:10:50+00:00",
        "sentAt": None,
        "emailsSent": 650,
    }


def test_mailchimp_refused_token_throttle_and_missing_endpoint(fresh_emulators):
    token = mint(fresh_emulators, "MAILCHIMP", [])
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "MAILCHIMP", "fetch_lists", token="0" * 32, metadata=mc_metadata(fresh_emulators))
    with pytest.raises(TokenExpired):  # another data centre refuses the token the same way
        read_all(fresh_emulators, "MAILCHIMP", "fetch_lists", token=token, metadata=mc_metadata(fresh_emulators, "us2"))
    fresh_emulators["MAILCHIMP"].rate_limit_next("campaigns")
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "MAILCHIMP", "fetch_campaigns", token=token, metadata=mc_metadata(fresh_emulators))
    assert limited.value.retry_after is None  # Mailchimp's 429 gives no wait
    fresh_emulators["MAILCHIMP"].fail_next(
        "lists",
        404,
        {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": "Resource Not Found",
            "status": 404,
            "detail": "The requested resource could not be found.",
            "instance": "x",
        },
    )
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "MAILCHIMP", "fetch_lists", token=token, metadata=mc_metadata(fresh_emulators))
    assert "could not be found" in caught.value.message and token not in caught.value.message
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "MAILCHIMP", "fetch_lists", token=token, metadata={})
    assert "apiEndpoint" in caught.value.message


def test_sendgrid_lists_and_single_sends_with_page_tokens(fresh_emulators):
    emu = fresh_emulators["SENDGRID"]
    emu.set_records(
        "lists",
        [
            {
                "id": f"ca7a3796-e8a8-4029-9ccb-{i:012d}",
                "name": f"List {i}",
                "contact_count": i,
                "_metadata": {"self": "x"},
            }
            for i in range(2100)
        ],
    )
    emu.set_records(
        "singlesends",
        [
            {
                "id": f"27c21bbf-a12c-440b-b8bf-{i:012d}",
                "name": f"Send {i}",
                "status": "draft",
                "categories": ["promo"],
                "send_at": None,
                "is_abtest": False,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-02T00:00:00Z",
            }
            for i in range(150)
        ],
    )
    key = fresh_emulators.sendgrid_key()
    pages, calls = read_all(fresh_emulators, "SENDGRID", "fetch_lists", token=key)
    assert calls == 3 and emu.calls["lists"] == 3 and [len(p.items) for p in pages] == [1000, 1000, 100]
    assert [i.external_id for p in pages for i in p.items] == [f"ca7a3796-e8a8-4029-9ccb-{i:012d}" for i in range(2100)]
    assert pages[2].items[99].data == {
        "id": "ca7a3796-e8a8-4029-9ccb-000000002099",
        "name": "List 2099",
        "contacts": 2099,
    }
    rest, calls = read_all(fresh_emulators, "SENDGRID", "fetch_lists", token=key, resume=pages[0].resume)
    assert calls == 2 and rest[0].items[0].data["name"] == "List 1000" and rest[-1].resume is None
    sends, calls = read_all(fresh_emulators, "SENDGRID", "fetch_campaigns", token=key)
    assert calls == 2 and [len(p.items) for p in sends] == [100, 50] and sends[1].items[49].data["name"] == "Send 149"
    assert sends[0].resume and "pageToken" in sends[0].resume and sends[1].resume is None


def test_sendgrid_refused_key_throttle_and_forbidden(fresh_emulators):
    emu = fresh_emulators["SENDGRID"]
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "SENDGRID", "fetch_lists", token="SG.not.valid")
    key = fresh_emulators.sendgrid_key()
    emu.rate_limit_next("singlesends", retry_after=25)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "SENDGRID", "fetch_campaigns", token=key)
    assert 23 <= limited.value.retry_after <= 25  # from X-RateLimit-Reset (epoch seconds)
    emu.fail_next("lists", 403, {"errors": [{"field": None, "message": "access forbidden"}]})
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "SENDGRID", "fetch_lists", token=key)
    assert not isinstance(caught.value, TokenExpired)
    assert "403" in caught.value.message and "access forbidden" in caught.value.message
    assert key not in caught.value.message
