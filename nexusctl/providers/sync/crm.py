"""HubSpot (fetch_contacts, fetch_campaigns) and Salesforce (fetch_contacts, fetch_campaigns).

HubSpot: ``GET /crm/v3/objects/contacts?limit=100&after=&properties=...`` and
the marketing campaigns API ``GET /marketing/v3/campaigns?limit=&after=&
properties=...`` (scope ``marketing.campaigns.read``; Marketing Hub
Professional or higher), both paged by ``paging.next.after`` (absent on the
last page). Only the properties named here come back (HubSpot's default set
otherwise). Throttling is 429 with ``X-HubSpot-RateLimit-*`` headers but no
Retry-After, so the wait is unknown (None); 403 ``MISSING_SCOPES`` is
MissingScopes naming HubSpot's ``requiredGranularScopes`` (a refresh does not
add scopes: the user connects again and allows them).

Salesforce: SOQL through ``GET {instance_url}/services/data/vXX.X/query?q=``
(``instance_url`` from the token answer, in the metadata as ``instanceUrl``),
then ``nextRecordsUrl`` while ``done`` is false; the resume state is that
URL. A query locator does not live forever (Salesforce drops it after about
15 minutes unused): resuming with one the org no longer knows
(``INVALID_QUERY_LOCATOR``) starts the query again from the top, which the
engine's fingerprints make harmless. Errors are ``[{message, errorCode}]``:
401 ``INVALID_SESSION_ID`` is TokenExpired, 403 ``REQUEST_LIMIT_EXCEEDED``
(the org's 24 h allowance) RateLimited via the adapter.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from nexusctl.errors import MissingScopes, ProviderError
from nexusctl.providers.sync.base import Item, Page, SyncAction

HUBSPOT_PAGE = 100  # the CRM and campaigns APIs' maximum limit
HUBSPOT_CONTACT_PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "jobtitle", "lifecyclestage")
HUBSPOT_CAMPAIGN_PROPERTIES = (
    "hs_name",
    "hs_campaign_status",
    "hs_start_date",
    "hs_end_date",
    "hs_owner",
    "hs_currency_code",
    "hs_audience",
)

SALESFORCE_API_VERSION = "62.0"
SALESFORCE_BATCH = 2000  # Sforce-Query-Options batchSize: 200-2000 (Salesforce may still send fewer)
SALESFORCE_CONTACT = (
    "SELECT Id, FirstName, LastName, Email, Phone, Title, AccountId, CreatedDate, LastModifiedDate FROM Contact"
)
SALESFORCE_CAMPAIGN = (
    "SELECT Id, Name, Type, Status, IsActive, StartDate, EndDate, NumberOfContacts, "
    "NumberOfLeads, CreatedDate, LastModifiedDate FROM Campaign"
)


def _hubspot_scopes(reply) -> None:
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.status != 403 or body.get("category") != "MISSING_SCOPES":
        return
    needed = sorted(
        {
            str(s)
            for e in body.get("errors") or []
            if isinstance(e, dict)
            for s in ((e.get("context") or {}).get("requiredGranularScopes") or [])
        }
    )
    raise MissingScopes(
        f"HUBSPOT refused the call: not granted {', '.join(needed) or 'a required scope'}; connect "
        "it again and allow it (some scopes need a HubSpot tier the portal may not have)",
        scopes=needed,
        provider="HUBSPOT",
    )


def _hubspot_pages(path: str, properties: tuple[str, ...], to_item):
    async def pages(api, resume):
        after = (resume or {}).get("after")
        while True:
            reply = await api.get(
                path,
                params={"limit": HUBSPOT_PAGE, "after": after, "properties": ",".join(properties)},
                check=_hubspot_scopes,
            )
            body = reply.body if isinstance(reply.body, dict) else {}
            if not isinstance(body.get("results"), list):
                raise ProviderError(f"HUBSPOT: {path} answered without results", provider="HUBSPOT")
            items = [to_item(r) for r in body["results"] if isinstance(r, dict) and r.get("id") is not None]
            after = (((body.get("paging") or {}).get("next") or {}).get("after")) or None
            yield Page(items, {"after": str(after)} if after else None)
            if not after:
                return

    return pages


def _hubspot_item(properties: tuple[str, ...], names: dict[str, str]):
    def to_item(r: dict) -> Item:
        props = r.get("properties") or {}
        data = {
            "id": str(r["id"]),
            **{names.get(p, p): props.get(p) for p in properties},
            "createdAt": r.get("createdAt"),
            "updatedAt": r.get("updatedAt"),
        }
        if r.get("archived"):
            data["archived"] = True
        return Item(str(r["id"]), data)

    return to_item


def _salesforce_pages(soql: str, to_item):
    async def pages(api, resume):
        instance = api.adapter.instance(api.tokens)
        headers = {"Sforce-Query-Options": f"batchSize={SALESFORCE_BATCH}"}
        first = f"{instance}/services/data/v{SALESFORCE_API_VERSION}/query"
        next_url = (resume or {}).get("next")
        resumed = bool(next_url)
        while True:
            if next_url:
                path = urlsplit(next_url).path  # stored relative; never follow a host other than the instance
                try:
                    reply = await api.get(f"{instance}{path}", headers=headers)
                except ProviderError as exc:
                    if not resumed or "INVALID_QUERY_LOCATOR" not in exc.message:
                        raise
                    resumed, next_url = False, None  # the org forgot the stored locator: read from the top
                    continue
            else:
                reply = await api.get(first, params={"q": soql}, headers=headers)
            resumed = False
            body = reply.body if isinstance(reply.body, dict) else {}
            if not isinstance(body.get("records"), list):
                raise ProviderError("SALESFORCE: the query answered without records", provider="SALESFORCE")
            items = [to_item(r) for r in body["records"] if isinstance(r, dict) and r.get("Id")]
            next_url = None if body.get("done", True) else body.get("nextRecordsUrl")
            yield Page(items, {"next": next_url} if next_url else None, meta={"totalSize": body.get("totalSize")})
            if not next_url:
                return

    return pages


def _salesforce_item(fields: dict[str, str]):
    def to_item(r: dict) -> Item:
        return Item(str(r["Id"]), {name: r.get(field) for field, name in fields.items()})

    return to_item


_SF_CONTACT = {
    "Id": "id",
    "FirstName": "firstName",
    "LastName": "lastName",
    "Email": "email",
    "Phone": "phone",
    "Title": "title",
    "AccountId": "accountId",
    "CreatedDate": "createdAt",
    "LastModifiedDate": "updatedAt",
}
_SF_CAMPAIGN = {
    "Id": "id",
    "Name": "name",
    "Type": "type",
    "Status": "status",
    "IsActive": "isActive",
    "StartDate": "startDate",
    "EndDate": "endDate",
    "NumberOfContacts": "contacts",
    "NumberOfLeads": "leads",
    "CreatedDate": "createdAt",
    "LastModifiedDate": "updatedAt",
}

ACTIONS = {
    "HUBSPOT": [
        SyncAction(
            "fetch_contacts",
            "contact",
            _hubspot_pages(
                "crm/v3/objects/contacts",
                HUBSPOT_CONTACT_PROPERTIES,
                _hubspot_item(
                    HUBSPOT_CONTACT_PROPERTIES,
                    {
                        "firstname": "firstName",
                        "lastname": "lastName",
                        "jobtitle": "jobTitle",
                        "lifecyclestage": "lifecycleStage",
                    },
                ),
            ),
            description="Contacts (crm/v3/objects/contacts)",
        ),
        SyncAction(
            "fetch_campaigns",
            "campaign",
            _hubspot_pages(
                "marketing/v3/campaigns",
                HUBSPOT_CAMPAIGN_PROPERTIES,
                _hubspot_item(
                    HUBSPOT_CAMPAIGN_PROPERTIES,
                    {
                        "hs_name": "name",
                        "hs_campaign_status": "status",
                        "hs_start_date": "startDate",
                        "hs_end_date": "endDate",
                        "hs_owner": "owner",
                        "hs_currency_code": "currency",
                        "hs_audience": "audience",
                    },
                ),
            ),
            description="Marketing campaigns (marketing/v3/campaigns)",
        ),
    ],
    "SALESFORCE": [
        SyncAction(
            "fetch_contacts",
            "contact",
            _salesforce_pages(SALESFORCE_CONTACT, _salesforce_item(_SF_CONTACT)),
            description="Contacts (SOQL on Contact)",
        ),
        SyncAction(
            "fetch_campaigns",
            "campaign",
            _salesforce_pages(SALESFORCE_CAMPAIGN, _salesforce_item(_SF_CAMPAIGN)),
            description="Campaigns (SOQL on Campaign)",
        ),
    ],
}
