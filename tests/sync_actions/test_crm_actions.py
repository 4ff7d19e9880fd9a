"""HubSpot (paging.next.after) and Salesforce (SOQL, nextRecordsUrl) against their emulators."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import MissingScopes, ProviderError, RateLimited, TokenExpired

HUBSPOT_SCOPES = ["oauth", "crm.objects.contacts.read", "marketing.campaigns.read"]


def _contacts(n):
    return [
        {
            "id": str(5100 + i),
            "properties": {
                "email": f"c{i}@example.com",
                "firstname": f"First{i}",
                "lastname": f"Last{i}",
                "jobtitle": "CTO" if i % 7 == 0 else None,
                "lifecyclestage": "lead",
                "notes_blob": "z" * 200,
            },
            "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": f"2026-02-{1 + i % 28:02d}T00:00:00Z",
            "archived": False,
        }
        for i in range(n)
    ]


def test_hubspot_contacts_every_page_with_the_after_cursor(fresh_emulators):
    fresh_emulators["HUBSPOT"].set_records("contacts", _contacts(230))
    token = mint(fresh_emulators, "HUBSPOT", HUBSPOT_SCOPES)
    pages, calls = read_all(fresh_emulators, "HUBSPOT", "fetch_contacts", token=token)
    assert calls == 3 and fresh_emulators["HUBSPOT"].calls["contacts"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 30] and pages[-1].resume is None
    assert [i.external_id for p in pages for i in p.items] == [str(5100 + i) for i in range(230)]
    assert pages[0].resume == {"after": "100"}
    data = pages[1].items[5].data  # contact 105
    assert data["email"] == "c105@example.com" and data["firstName"] == "First105" and data["jobTitle"] == "CTO"
    assert "notes_blob" not in data and data["updatedAt"] == "2026-02-22T00:00:00Z"


def test_hubspot_contacts_resume_and_campaigns(fresh_emulators):
    fresh_emulators["HUBSPOT"].set_records("contacts", _contacts(230))
    fresh_emulators["HUBSPOT"].set_records(
        "campaigns",
        [
            {
                "id": f"8c4e{i:04d}-0000-4000-8000-000000000000",
                "properties": {
                    "hs_name": f"Spring {i}",
                    "hs_campaign_status": "active",
                    "hs_start_date": "2026-03-01",
                    "hs_end_date": None,
                    "hs_owner": "1234567",
                    "hs_currency_code": "USD",
                },
                "createdAt": "2026-02-01T00:00:00Z",
                "updatedAt": "2026-02-02T00:00:00Z",
                "businessUnits": [{"id": 0}],
            }
            for i in range(120)
        ],
    )
    token = mint(fresh_emulators, "HUBSPOT", HUBSPOT_SCOPES)
    first, _ = read_all(fresh_emulators, "HUBSPOT", "fetch_contacts", token=token, max_pages=1)
    rest, calls = read_all(fresh_emulators, "HUBSPOT", "fetch_contacts", token=token, resume=first[0].resume)
    assert calls == 2 and rest[0].items[0].external_id == "5200" and rest[-1].resume is None
    campaigns, calls = read_all(fresh_emulators, "HUBSPOT", "fetch_campaigns", token=token)
    assert calls == 2 and [len(p.items) for p in campaigns] == [100, 20]
    assert campaigns[1].items[19].data["name"] == "Spring 119" and campaigns[1].items[19].data["status"] == "active"
    assert campaigns[1].items[19].external_id == "8c4e0119-0000-4000-8000-000000000000"


def test_hubspot_refused_token_missing_scope_and_throttle(fresh_emulators):
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "HUBSPOT", "fetch_contacts", token="CJnot-a-token")
    with pytest.raises(MissingScopes) as caught:  # a portal whose tier grants no campaigns scope
        read_all(
            fresh_emulators,
            "HUBSPOT",
            "fetch_campaigns",
            token=mint(fresh_emulators, "HUBSPOT", ["oauth", "crm.objects.contacts.read"]),
        )
    assert caught.value.details["scopes"] == ["marketing.campaigns.read"]
    assert "marketing.campaigns.read" in caught.value.message
    fresh_emulators["HUBSPOT"].rate_limit_next("contacts", retry_after=10)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "HUBSPOT", "fetch_contacts", token=mint(fresh_emulators, "HUBSPOT", HUBSPOT_SCOPES))
    assert limited.value.retry_after is None  # HubSpot's 429 names its window, not a Retry-After


def sf_metadata(emulators) -> dict:
    return {"instanceUrl": f"{emulators.base_url}/salesforce/na1.my.salesforce.com"}


def _sf_contacts(n):
    return [
        {
            "Id": f"003Dn{i:010d}",
            "FirstName": f"Ada{i}",
            "LastName": "Lovelace",
            "Email": f"ada{i}@example.com",
            "Phone": None,
            "Title": "Engineer",
            "AccountId": "001Dn0000000001",
            "Description": "d" * 300,
            "CreatedDate": "2026-01-01T00:00:00.000+0000",
            "LastModifiedDate": "2026-01-05T00:00:00.000+0000",
        }
        for i in range(n)
    ]


def test_salesforce_contacts_follow_next_records_url(fresh_emulators):
    fresh_emulators["SALESFORCE"].set_records("contacts", _sf_contacts(4500))
    token = mint(fresh_emulators, "SALESFORCE", ["api", "refresh_token"])
    pages, calls = read_all(
        fresh_emulators, "SALESFORCE", "fetch_contacts", token=token, metadata=sf_metadata(fresh_emulators)
    )
    assert calls == 3 and fresh_emulators["SALESFORCE"].calls["query"] == 3
    assert [len(p.items) for p in pages] == [2000, 2000, 500] and pages[-1].resume is None
    assert [i.external_id for p in pages for i in p.items] == [f"003Dn{i:010d}" for i in range(4500)]
    assert pages[0].resume["next"].startswith("/services/data/v62.0/query/01g")
    data = pages[2].items[0].data
    assert data == {
        "id": "003Dn0000004000",
        "firstName": "Ada4000",
        "lastName": "Lovelace",
        "email": "ada4000@example.com",
        "phone": None,
        "title": "Engineer",
        "accountId": "001Dn0000000001",
        "createdAt": "2026-01-01T00:00:00.000+0000",
        "updatedAt": "2026-01-05T00:00:00.000+0000",
    }


def test_salesforce_resumes_and_restarts_when_the_locator_is_gone(fresh_emulators):
    emu = fresh_emulators["SALESFORCE"]
    emu.set_records("contacts", _sf_contacts(4500))
    token, meta = mint(fresh_emulators, "SALESFORCE", ["api"]), sf_metadata(fresh_emulators)
    first, _ = read_all(fresh_emulators, "SALESFORCE", "fetch_contacts", token=token, metadata=meta, max_pages=1)
    rest, calls = read_all(
        fresh_emulators, "SALESFORCE", "fetch_contacts", token=token, metadata=meta, resume=first[0].resume
    )
    assert calls == 2 and rest[0].items[0].external_id == "003Dn0000002000" and len(rest[1].items) == 500
    emu.forget_locators()
    again, calls = read_all(
        fresh_emulators, "SALESFORCE", "fetch_contacts", token=token, metadata=meta, resume=first[0].resume
    )
    assert calls == 4 and [len(p.items) for p in again] == [2000, 2000, 500]  # refused locator, then from the top
    assert again[0].items[0].external_id == "003Dn0000000000"


def test_salesforce_campaigns_and_errors(fresh_emulators):
    emu = fresh_emulators["SALESFORCE"]
    emu.set_records(
        "campaigns",
        [
            {
                "Id": f"701Dn{i:010d}",
                "Name": f"Webinar {i}",
                "Type": "Webinar",
                "Status": "Planned",
                "IsActive": i % 2 == 0,
                "StartDate": "2026-04-01",
                "EndDate": None,
                "NumberOfContacts": i,
                "NumberOfLeads": 0,
                "CreatedDate": "2026-01-01T00:00:00.000+0000",
                "LastModifiedDate": "2026-01-01T00:00:00.000+0000",
            }
            for i in range(3)
        ],
    )
    token, meta = mint(fresh_emulators, "SALESFORCE", ["api"]), sf_metadata(fresh_emulators)
    pages, calls = read_all(fresh_emulators, "SALESFORCE", "fetch_campaigns", token=token, metadata=meta)
    assert calls == 1 and len(pages) == 1 and pages[0].resume is None
    assert [i.data["isActive"] for i in pages[0].items] == [True, False, True] and pages[0].items[2].data[
        "contacts"
    ] == 2
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "SALESFORCE", "fetch_campaigns", token="00Dx!AQnot", metadata=meta)
    emu.rate_limit_next("query")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "SALESFORCE", "fetch_campaigns", token=token, metadata=meta)
    emu.set_records("campaigns", [{"Id": "701Dn0000000009", "Name": "no other fields"}])
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "SALESFORCE", "fetch_campaigns", token=token, metadata=meta)
    assert "INVALID_FIELD" in caught.value.message and "No such column" in caught.value.message
    with pytest.raises(ProviderError) as caught:
        read_all(fresh_emulators, "SALESFORCE", "fetch_contacts", token=token, metadata={})
    assert "instance_url" in caught.value.message
