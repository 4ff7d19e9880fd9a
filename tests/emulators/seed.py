"""A few records of every kind each emulator's list endpoints serve, for a run by hand.

`python -m tests.emulators` seeds its emulators with these, so a manual sync after
connecting reads something from every provider. The test fixtures never call it:
their emulators start empty and each test sets the records it counts on.

The rows have the fields the real APIs answer with (and the sync actions read),
and belong to the emulators' default accounts: the Slack team, the LinkedIn
member, the X user, the YouTube channel's uploads, the TikTok Ads advertisers.
"""

from __future__ import annotations

import datetime as dt

COUNT = 3  # rows per kind: enough to see a list, few enough to read


def seed(emu) -> None:
    """Fill every emulator of ``emu`` (an ``Emulators``) with a few records of each kind it lists."""
    now = emu.now()  # the shared clock: earlier tests may have moved it on
    for provider, kinds in _records(emu, now).items():
        for kind, rows in kinds.items():
            emu[provider].set_records(kind, rows)
    _add_metrics(emu)
    for provider, rows in _comments(emu, now).items():
        emu[provider].set_records("comments", rows)


def _iso(seconds: float, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime(fmt)


def _records(emu, now: float) -> dict[str, dict[str, list[dict]]]:
    n = range(COUNT)
    day = 86400
    graph = "%Y-%m-%dT%H:%M:%S+0000"  # Meta's and PayPal's timestamp form
    advertisers = emu["TIKTOK_ADS"].advertiser_ids
    linkedin_me = f"urn:li:person:{emu['LINKEDIN'].account['sub']}"
    uploads = emu["YOUTUBE"].account["uploads"]
    channel = emu["YOUTUBE"].account["id"]
    return {
        "SLACK": {
            "channels": [
                {
                    "id": f"C0DEMO{i:04d}",
                    "name": ("general", "random", "launches")[i],
                    "is_private": i == 2,
                    "num_members": 5 + i,
                    "topic": {"value": f"topic {i}"},
                }
                for i in n
            ]
        },
        "DISCORD": {
            "guilds": [
                {
                    "id": str(90000000000000000 + i),
                    "name": f"Demo Server {i}",
                    "owner": i == 0,
                    "permissions": "2147483647",
                }
                for i in n
            ],
            "channels": [
                {
                    "id": str(91000000000000000 + i),
                    "name": f"announcements-{i}",
                    "guild_id": str(90000000000000000 + i),
                    "type": 0,
                }
                for i in n
            ],
        },
        "TIKTOK": {
            "videos": [
                {
                    "id": f"73{i:017d}",
                    "title": f"Demo video {i}",
                    "create_time": int(now) - (i + 1) * 3600,
                    "share_url": f"https://www.tiktok.com/@demo.creator/video/73{i:017d}",
                    "view_count": 1000 * (i + 1),
                }
                for i in n
            ]
        },
        "INSTAGRAM": {
            "media": [
                {
                    "id": f"1789{i:012d}",
                    "caption": f"Demo post {i}",
                    "media_type": "IMAGE" if i else "VIDEO",
                    "media_url": f"https://scontent.cdninstagram.com/demo{i}.jpg",
                    "permalink": f"https://www.instagram.com/p/demo{i}/",
                    "timestamp": _iso(now - (i + 1) * day, graph),
                    "like_count": 10 * i,
                }
                for i in n
            ]
        },
        "FACEBOOK": {
            "pages": [{"id": "101", "name": "Demo Page"}],
            "posts": [
                {
                    "id": f"101_{i}",
                    "page_id": "101",
                    "message": f"Demo page post {i}",
                    "created_time": _iso(now - (i + 1) * day, graph),
                }
                for i in n
            ],
        },
        "YOUTUBE": {
            "uploads": [
                {
                    "kind": "youtube#playlistItem",
                    "etag": f"e{i}",
                    "id": f"UExpi{i:05d}",
                    "snippet": {
                        "publishedAt": _iso(now - (i + 1) * day),
                        "channelId": channel,
                        "title": f"Demo upload {i}",
                        "description": f"about {i}",
                        "playlistId": uploads,
                        "position": i,
                        "thumbnails": {"default": {"url": "https://i.ytimg.com/vi/demo/default.jpg"}},
                        "resourceId": {"kind": "youtube#video", "videoId": f"vid{i:08d}"},
                    },
                }
                for i in n
            ]
        },
        "TWITTER": {
            "tweets": [
                {
                    "id": str(1860000000000000000 - i),
                    "text": f"Demo post {i}",
                    "created_at": _iso(now - (i + 1) * 3600, "%Y-%m-%dT%H:%M:%S.000Z"),
                    "edit_history_tweet_ids": [str(1860000000000000000 - i)],
                }
                for i in n
            ]
        },
        "LINKEDIN": {
            "posts": [
                {
                    "id": f"urn:li:share:7{i:018d}",
                    "author": linkedin_me,
                    "commentary": f"Hello {i}",
                    "visibility": "PUBLIC",
                    "lifecycleState": "PUBLISHED",
                    "createdAt": int(now * 1000) - i,
                    "publishedAt": int(now * 1000) - i,
                    "lastModifiedAt": int(now * 1000) - i,
                    "distribution": {"feedDistribution": "MAIN_FEED"},
                }
                for i in n
            ]
        },
        "META_ADS": {
            "adaccounts": [{"id": "act_111", "account_id": "111", "name": "Demo Ad Account"}],
            "campaigns": [
                {
                    "id": f"2385{i:010d}",
                    "account_id": "111",
                    "name": f"Demo campaign {i}",
                    "status": "ACTIVE",
                    "effective_status": "ACTIVE",
                    "objective": "OUTCOME_SALES",
                    "daily_budget": str(1000 + i),
                    "created_time": _iso(now - 30 * day, graph),
                    "updated_time": _iso(now - day, graph),
                }
                for i in n
            ],
            "insights": [
                {
                    "campaign_id": f"2385{i:010d}",
                    "impressions": 1000 + i,
                    "clicks": 10 + i,
                    "spend": f"{i}.50",
                    "reach": 800 + i,
                    "ctr": "1.25",
                    "cpc": "0.33",
                }
                for i in n
            ],
        },
        "TIKTOK_ADS": {
            "campaigns": [
                {
                    "campaign_id": f"17{i:017d}",
                    "advertiser_id": advertisers[0],
                    "campaign_name": f"Demo TikTok campaign {i}",
                    "objective_type": "TRAFFIC",
                    "operation_status": "ENABLE",
                    "secondary_status": "CAMPAIGN_STATUS_ENABLE",
                    "budget": 50.0 + i,
                    "budget_mode": "BUDGET_MODE_DAY",
                    "create_time": _iso(now - 30 * day, "%Y-%m-%d %H:%M:%S"),
                    "modify_time": _iso(now - day, "%Y-%m-%d %H:%M:%S"),
                }
                for i in n
            ],
            "reports": [
                {
                    "advertiser_id": advertisers[0],
                    "campaign_id": f"17{i:017d}",
                    "metrics": {
                        "spend": f"{i}.25",
                        "impressions": 100 + i,
                        "clicks": i,
                        "ctr": "2.5",
                        "cpc": "0.10",
                        "reach": 90 + i,
                        "conversion": i,
                    },
                }
                for i in n
            ],
        },
        "GOOGLE_ADS": {
            "customers": [{"id": "1234567890"}],
            "campaigns": [
                {
                    "customer_id": "1234567890",
                    "id": 100 + i,
                    "name": f"Demo search {i}",
                    "status": "ENABLED",
                    "metrics": {
                        "impressions": 1000 * (i + 1),
                        "clicks": 10 * (i + 1),
                        "costMicros": 1_250_000 * (i + 1),
                        "conversions": i,
                    },
                }
                for i in n
            ],
        },
        "SHOPIFY": {
            "products": [
                {
                    "id": f"gid://shopify/Product/{1000 + i}",
                    "title": f"Demo product {i}",
                    "handle": f"demo-product-{i}",
                    "status": "ACTIVE",
                    "vendor": "Acme",
                    "productType": "Widget",
                    "tags": ["demo"],
                    "totalInventory": 5 * i,
                    "createdAt": _iso(now - 30 * day),
                    "updatedAt": _iso(now - day),
                    "descriptionHtml": f"<p>Demo product {i}</p>",
                }
                for i in n
            ],
            "orders": [
                {
                    "id": f"gid://shopify/Order/{i + 1}",
                    "name": f"#{1001 + i}",
                    "createdAt": _iso(now - 2 * day),
                    "updatedAt": _iso(now - day),
                    "cancelledAt": None,
                    "displayFinancialStatus": "PAID",
                    "displayFulfillmentStatus": "UNFULFILLED",
                    "currentTotalPriceSet": {"shopMoney": {"amount": f"{19 + i}.50", "currencyCode": "USD"}},
                }
                for i in n
            ],
            "inventory": [
                {
                    "id": f"gid://shopify/InventoryItem/{i + 1}",
                    "sku": f"SKU-{i}",
                    "tracked": True,
                    "createdAt": _iso(now - 30 * day),
                    "updatedAt": _iso(now - day),
                    "inventoryLevels": {
                        "pageInfo": {"hasNextPage": False},
                        "nodes": [
                            {
                                "location": {"id": "gid://shopify/Location/1", "name": "Main store"},
                                "quantities": [
                                    {"name": "available", "quantity": 5 * i},
                                    {"name": "on_hand", "quantity": 5 * i + 1},
                                ],
                            }
                        ],
                    },
                }
                for i in n
            ],
        },
        "WOOCOMMERCE": {  # newest first, as the store lists them: ids descending
            "products": [
                {
                    "id": 10 + i,
                    "name": f"Demo Woo product {i}",
                    "slug": f"demo-{i}",
                    "sku": f"W{i}",
                    "type": "simple",
                    "status": "publish",
                    "price": f"{i + 1}.00",
                    "regular_price": f"{i + 1}.00",
                    "sale_price": "",
                    "stock_status": "instock",
                    "stock_quantity": i,
                    "date_created_gmt": _iso(now - 30 * day, "%Y-%m-%dT%H:%M:%S"),
                    "date_modified_gmt": _iso(now - day, "%Y-%m-%dT%H:%M:%S"),
                    "description": "Demo",
                }
                for i in reversed(n)
            ],
            "orders": [
                {
                    "id": 500 + i,
                    "number": str(500 + i),
                    "status": "processing",
                    "currency": "USD",
                    "total": f"{9 + i}.99",
                    "customer_id": 1,
                    "line_items": [{"id": 1}],
                    "date_created_gmt": _iso(now - 2 * day, "%Y-%m-%dT%H:%M:%S"),
                    "date_modified_gmt": _iso(now - day, "%Y-%m-%dT%H:%M:%S"),
                    "date_paid_gmt": None,
                }
                for i in reversed(n)
            ],
        },
        "HUBSPOT": {
            "contacts": [
                {
                    "id": str(5100 + i),
                    "properties": {
                        "email": f"contact{i}@example.com",
                        "firstname": f"First{i}",
                        "lastname": f"Last{i}",
                        "lifecyclestage": "lead",
                    },
                    "createdAt": _iso(now - 30 * day),
                    "updatedAt": _iso(now - day),
                    "archived": False,
                }
                for i in n
            ],
            "campaigns": [
                {
                    "id": f"8c4e{i:04d}-0000-4000-8000-000000000000",
                    "properties": {
                        "hs_name": f"Demo campaign {i}",
                        "hs_campaign_status": "active",
                        "hs_start_date": _iso(now, "%Y-%m-%d"),
                        "hs_end_date": None,
                        "hs_owner": "1234567",
                        "hs_currency_code": "USD",
                    },
                    "createdAt": _iso(now - 30 * day),
                    "updatedAt": _iso(now - day),
                    "businessUnits": [{"id": 0}],
                }
                for i in n
            ],
        },
        "SALESFORCE": {
            "contacts": [
                {
                    "Id": f"003Dn{i:010d}",
                    "FirstName": f"Ada{i}",
                    "LastName": "Lovelace",
                    "Email": f"ada{i}@example.com",
                    "Phone": None,
                    "Title": "Engineer",
                    "AccountId": "001Dn0000000001",
                    "Description": "Demo contact",
                    "CreatedDate": _iso(now - 30 * day, "%Y-%m-%dT%H:%M:%S.000+0000"),
                    "LastModifiedDate": _iso(now - day, "%Y-%m-%dT%H:%M:%S.000+0000"),
                }
                for i in n
            ],
            "campaigns": [
                {
                    "Id": f"701Dn{i:010d}",
                    "Name": f"Demo webinar {i}",
                    "Type": "Webinar",
                    "Status": "Planned",
                    "IsActive": True,
                    "StartDate": _iso(now, "%Y-%m-%d"),
                    "EndDate": None,
                    "NumberOfContacts": i,
                    "NumberOfLeads": 0,
                    "CreatedDate": _iso(now - 30 * day, "%Y-%m-%dT%H:%M:%S.000+0000"),
                    "LastModifiedDate": _iso(now - day, "%Y-%m-%dT%H:%M:%S.000+0000"),
                }
                for i in n
            ],
        },
        "MAILCHIMP": {
            "lists": [
                {
                    "id": f"{i:010x}",
                    "web_id": 1000 + i,
                    "name": f"Demo audience {i}",
                    "visibility": "prv",
                    "date_created": _iso(now - (30 - i) * day, "%Y-%m-%dT%H:%M:%S+00:00"),
                    "stats": {"member_count": 10 * i, "unsubscribe_count": 0, "cleaned_count": 0, "last_sub_date": ""},
                    "contact": {"company": "Demo", "address1": "1 Main St"},
                }
                for i in reversed(n)
            ],
            "campaigns": [
                {
                    "id": f"c{i:05d}",
                    "web_id": i,
                    "type": "regular",
                    "status": "sent",
                    "create_time": _iso(now - (10 - i) * day, "%Y-%m-%dT%H:%M:%S+00:00"),
                    "send_time": "",
                    "emails_sent": 10 * i,
                    "settings": {"title": f"Newsletter {i}", "subject_line": f"News {i}"},
                    "recipients": {"list_id": f"{0:010x}"},
                }
                for i in n
            ],
        },
        "SENDGRID": {
            "lists": [
                {
                    "id": f"ca7a3796-e8a8-4029-9ccb-{i:012d}",
                    "name": f"Demo list {i}",
                    "contact_count": 10 * i,
                    "_metadata": {"self": f"https://api.sendgrid.com/v3/marketing/lists/{i}"},
                }
                for i in n
            ],
            "singlesends": [
                {
                    "id": f"27c21bbf-a12c-440b-b8bf-{i:012d}",
                    "name": f"Demo send {i}",
                    "status": "draft",
                    "categories": ["demo"],
                    "send_at": None,
                    "is_abtest": False,
                    "created_at": _iso(now - 30 * day),
                    "updated_at": _iso(now - day),
                }
                for i in n
            ],
        },
        "STRIPE": {
            "charges": [
                {
                    "id": f"ch_3Demo{i:08d}",
                    "object": "charge",
                    "amount": 100 * (i + 1),
                    "currency": "usd",
                    "status": "succeeded",
                    "paid": True,
                    "captured": True,
                    "refunded": False,
                    "amount_refunded": 0,
                    "disputed": False,
                    "created": int(now) - (i + 1) * 3600,
                    "customer": f"cus_demo{i}",
                    "payment_intent": f"pi_demo{i}",
                    "description": None,
                    "failure_code": None,
                    "outcome": {"type": "authorized", "risk_level": "normal"},
                    "livemode": False,
                    "billing_details": {"email": "buyer@example.com"},
                    "receipt_url": "https://pay.stripe.com/receipts/demo",
                }
                for i in n
            ]
        },
        "PAYPAL": {
            "transactions": [
                {
                    "transaction_info": {
                        "paypal_account_id": "6STWC2LSUYYYE",
                        "transaction_id": f"5TY05013RG{i:07d}",
                        "transaction_event_code": "T0006",
                        "transaction_initiation_date": _iso(now - (i + 1) * day, graph),
                        "transaction_updated_date": _iso(now - (i + 1) * day, graph),
                        "transaction_amount": {"currency_code": "USD", "value": f"{10 + i}.00"},
                        "fee_amount": {"currency_code": "USD", "value": "-0.50"},
                        "transaction_status": "S",
                    },
                    "payer_info": {"email_address": "buyer@example.com"},
                }
                for i in n
            ]
        },
        "ZAPIER": {
            "zaps": [
                {
                    "type": "zap",
                    "id": f"00000000-0000-4000-8000-{i:012d}",
                    "title": f"Demo zap {i}",
                    "is_enabled": True,
                    "last_successful_run_date": _iso(now - day),
                    "updated_at": _iso(now - 2 * day),
                    "links": {"html_editor": f"https://zapier.com/editor/{i}"},
                    "steps": [{"action": {"app": {"title": "Gmail"}}}, {"action": {"app": {"title": "Slack"}}}],
                }
                for i in n
            ]
        },
    }


def _add_metrics(emu) -> None:
    """What fetch_analytics reads on top of the lists: each post's counts and insights (the accounts' own
    metrics are the emulators' defaults)."""

    def extend(provider: str, kind: str, fields) -> None:
        rows = emu[provider].records_of(kind)
        emu[provider].set_records(kind, [{**row, **fields(i, row)} for i, row in enumerate(rows)])

    extend("TIKTOK", "videos", lambda i, _r: {"like_count": 50 * (i + 1), "comment_count": 5 + i, "share_count": 2 + i})
    extend(
        "INSTAGRAM",
        "media",
        lambda i, _r: {
            "comments_count": i,
            "insights": {
                "views": 300 * (i + 1),
                "reach": 200 * (i + 1),
                "saved": i,
                "shares": i,
                "total_interactions": 12 + i,
            },
        },
    )
    extend(
        "FACEBOOK",
        "pages",
        lambda _i, _r: {
            "followers_count": 1500,
            "insights": {"page_media_view": 120, "page_total_media_view_unique": 90, "page_post_engagements": 15},
        },
    )
    extend(
        "FACEBOOK",
        "posts",
        lambda i, _r: {
            "insights": {
                "post_media_view": 400 + i,
                "post_total_media_view_unique": 300 + i,
                "post_clicks": 20 + i,
                "post_reactions_by_type_total": {"like": 10 + i, "love": i},
            }
        },
    )
    extend(
        "TWITTER",
        "tweets",
        lambda i, _r: {
            "public_metrics": {
                "retweet_count": i,
                "reply_count": 2 * i,
                "like_count": 10 * (i + 1),
                "quote_count": 0,
                "bookmark_count": i,
                "impression_count": 500 * (i + 1),
            }
        },
    )
    uploads = emu["YOUTUBE"].records_of("uploads")
    emu["YOUTUBE"].set_records(
        "videos",
        [
            {
                "id": u["snippet"]["resourceId"]["videoId"],
                "statistics": {
                    "viewCount": str(1000 * (i + 1)),
                    "likeCount": str(40 + i),
                    "favoriteCount": "0",
                    "commentCount": str(3 + i),
                },
            }
            for i, u in enumerate(uploads)
        ],
    )


def _comments(emu, now: float) -> dict[str, list[dict]]:
    """A few comments on the first seeded video or post of each provider with comments (tests/emulators/comments.py)."""
    n = range(COUNT)
    graph = "%Y-%m-%dT%H:%M:%S+0000"
    people = ("Ada", "Grace", "Linus")
    return {
        "TIKTOK": [
            {
                "comment_id": f"74{i:017d}",
                "video_id": f"73{0:017d}",
                "text": f"Nice video {i}",
                "likes": i,
                "replies": 0,
                "create_time": int(now) - (i + 1) * 600,
                "username": people[i].lower(),
                "display_name": people[i],
                "parent_comment_id": None,
            }
            for i in n
        ],
        "INSTAGRAM": [
            {
                "id": f"1790{i:012d}",
                "media_id": f"1789{0:012d}",
                "text": f"Love it {i}",
                "timestamp": _iso(now - (i + 1) * 600, graph),
                "username": people[i].lower(),
                "like_count": i,
            }
            for i in n
        ],
        "FACEBOOK": [
            {
                "id": f"0_{500 + i}",
                "post_id": "101_0",
                "message": f"Great post {i}",
                "created_time": _iso(now - (i + 1) * 600, graph),
                "from": {"id": str(700 + i), "name": people[i]},
                "like_count": i,
                "comment_count": 0,
            }
            for i in n
        ],
        "YOUTUBE": [
            {
                "id": f"UgzDemoComment{i:04d}",
                "videoId": "vid00000000",
                "textOriginal": f"First! {i}",
                "authorDisplayName": people[i],
                "authorChannelId": f"UCviewer{i:016d}",
                "likeCount": i,
                "publishedAt": _iso(now - (i + 1) * 600),
                "updatedAt": _iso(now - (i + 1) * 600),
                "totalReplyCount": 0,
            }
            for i in n
        ],
    }
