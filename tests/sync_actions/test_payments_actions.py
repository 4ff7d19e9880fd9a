"""Stripe (starting_after / has_more) and PayPal (31-day windows, total_pages) against their emulators."""

from __future__ import annotations

import datetime as dt

import pytest
from support import clock
from synckit import mint, read_all

from nexusctl.errors import ProviderError, RateLimited, TokenExpired
from nexusctl.providers.sync import payments


def _charges(n):
    # Newest first, as Stripe lists them.
    return [
        {
            "id": f"ch_3Demo{i:08d}",
            "object": "charge",
            "amount": 100 * i,
            "currency": "usd",
            "status": "succeeded",
            "paid": True,
            "captured": True,
            "refunded": i % 10 == 0,
            "amount_refunded": 100 * i if i % 10 == 0 else 0,
            "disputed": False,
            "created": 1760000000 + i,
            "customer": f"cus_{i}",
            "payment_intent": f"pi_{i}",
            "description": None,
            "failure_code": None,
            "outcome": {"type": "authorized", "risk_level": "normal"},
            "livemode": False,
            "billing_details": {"email": "x@example.com"},
            "receipt_url": "https://pay.stripe.com/receipts/x",
        }
        for i in reversed(range(250))
    ]


def test_stripe_charges_every_page_newest_first(fresh_emulators):
    rows = _charges(250)
    fresh_emulators["STRIPE"].set_records("charges", rows)
    token = mint(fresh_emulators, "STRIPE", account="acct_1DemoConnected0")
    pages, calls = read_all(fresh_emulators, "STRIPE", "fetch_charges", token=token)
    assert calls == 3 and fresh_emulators["STRIPE"].calls["charges"] == 3
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert [i.external_id for p in pages for i in p.items] == [r["id"] for r in rows]
    assert pages[0].resume == {"startingAfter": rows[99]["id"]} and pages[-1].resume is None
    data = pages[0].items[0].data
    assert data["amount"] == 24900 and data["outcome"] == "authorized" and "billing_details" not in data
    assert pages[1].items[49].data["refunded"] is True  # charge 150


def test_stripe_resumes_after_the_last_id_and_reports_errors(fresh_emulators):
    rows = _charges(250)
    fresh_emulators["STRIPE"].set_records("charges", rows)
    token = mint(fresh_emulators, "STRIPE")
    rest, calls = read_all(
        fresh_emulators, "STRIPE", "fetch_charges", token=token, resume={"startingAfter": rows[199]["id"]}
    )
    assert calls == 1 and [i.external_id for i in rest[0].items] == [r["id"] for r in rows[200:]]
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "STRIPE", "fetch_charges", token="sk_test_" + "x" * 48)
    fresh_emulators["STRIPE"].rate_limit_next("charges")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "STRIPE", "fetch_charges", token=token)
    with pytest.raises(ProviderError) as caught:  # a resume id the account does not have
        read_all(fresh_emulators, "STRIPE", "fetch_charges", token=token, resume={"startingAfter": "ch_gone"})
    assert "400" in caught.value.message and "No such charge" in caught.value.message
    assert token not in caught.value.message


SEARCH = "https://uri.paypal.com/services/reporting/search/read"


def _paypal_rows(times):
    return [
        {
            "transaction_info": {
                "paypal_account_id": "6STWC2LSUYYYE",
                "transaction_id": f"5TY05013RG{i:07d}",
                "transaction_event_code": "T0006",
                "transaction_initiation_date": t.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "transaction_updated_date": t.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "transaction_amount": {"currency_code": "USD", "value": f"{i}.00"},
                "fee_amount": {"currency_code": "USD", "value": "-0.50"},
                "transaction_status": "S",
            },
            "payer_info": {"email_address": "buyer@example.com"},
        }
        for i, t in enumerate(times)
    ]


def test_paypal_walks_30_day_windows_page_by_page(fresh_emulators):
    now = clock.now(fresh_emulators).replace(microsecond=0)  # the shared clock, the product's and PayPal's
    start = now - dt.timedelta(days=payments.PAYPAL_LOOKBACK_DAYS)
    # 700 in the first 30-day window (two pages), none in the second, 3 in the third, one too old
    times = (
        [start + dt.timedelta(hours=1, minutes=i) for i in range(700)]
        + [start + dt.timedelta(days=61, hours=i) for i in range(3)]
        + [start - dt.timedelta(days=2)]
    )
    fresh_emulators["PAYPAL"].set_records("transactions", _paypal_rows(times))
    fresh_emulators["PAYPAL"].approve_scopes(SEARCH)  # the operator's app is a PayPal partner
    token = mint(fresh_emulators, "PAYPAL")
    pages, calls = read_all(fresh_emulators, "PAYPAL", "fetch_transactions", token=token)
    assert calls == 4 and fresh_emulators["PAYPAL"].calls["transactions"] == 4  # 90 days: three windows
    assert [len(p.items) for p in pages] == [500, 200, 0, 3]
    assert [i.external_id for p in pages for i in p.items] == [f"5TY05013RG{i:07d}:T0006" for i in range(703)]
    assert pages[0].resume["page"] == 2 and pages[1].resume["page"] == 1 and pages[-1].resume is None
    windows = [[dt.datetime.fromisoformat(t) for t in p.meta["window"]] for p in pages]
    assert all(b - a <= dt.timedelta(days=31) for a, b in windows)  # the emulator refuses more, too
    assert abs(windows[0][0] - start) <= dt.timedelta(seconds=5) and windows[2][0] == windows[1][1] + dt.timedelta(
        seconds=1
    )
    assert abs(windows[-1][1] - now) <= dt.timedelta(seconds=5)
    assert pages[3].items[2].data["amount"] == {"amount": "702.00", "currency": "USD"}
    assert "payer_info" not in pages[3].items[2].data and pages[3].items[2].data["status"] == "S"


def test_paypal_resumes_inside_a_window_and_reports_errors(fresh_emulators):
    now = clock.now(fresh_emulators).replace(microsecond=0)  # the shared clock, the product's and PayPal's
    start = now - dt.timedelta(days=20)
    fresh_emulators["PAYPAL"].set_records(
        "transactions", _paypal_rows([start + dt.timedelta(minutes=i) for i in range(1200)])
    )
    fresh_emulators["PAYPAL"].approve_scopes(SEARCH)  # the operator's app is a PayPal partner
    token = mint(fresh_emulators, "PAYPAL")
    resume = {"from": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "until": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "page": 2}
    pages, calls = read_all(fresh_emulators, "PAYPAL", "fetch_transactions", token=token, resume=resume)
    assert calls == 2 and [len(p.items) for p in pages] == [500, 200] and pages[-1].resume is None
    assert pages[0].items[0].external_id == "5TY05013RG0000500:T0006"
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "PAYPAL", "fetch_transactions", token="A21AAnot-a-token")
    with pytest.raises(ProviderError) as caught:  # Transaction Search not enabled for the app
        read_all(fresh_emulators, "PAYPAL", "fetch_transactions", token=mint(fresh_emulators, "PAYPAL", ["openid"]))
    assert "403" in caught.value.message and "insufficient permissions" in caught.value.message
    fresh_emulators["PAYPAL"].rate_limit_next("transactions")
    with pytest.raises(RateLimited):
        read_all(fresh_emulators, "PAYPAL", "fetch_transactions", token=token)
