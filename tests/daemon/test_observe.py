"""Request ids, access logs without secrets, Prometheus metrics, JSON logs."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.tokens import configured_secret, mint

from nexusctl import config
from nexusctl.daemon.app import create_app
from nexusctl.daemon.observe import JsonFormatter
from nexusctl.errors import ConfigError


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await aiohttp_client(create_app(config.load()))


def _token(user):
    return mint(user, ttl=60, secret=configured_secret())


async def test_request_id_is_echoed_or_generated(api):
    given = await api.get("/health", headers={"X-Request-Id": "trace-42.a_b"})
    assert given.headers["X-Request-Id"] == "trace-42.a_b"
    for bad in ({}, {"X-Request-Id": "has spaces"}, {"X-Request-Id": "x" * 200}):
        response = await api.get("/health", headers=bad)
        generated = response.headers["X-Request-Id"]
        assert len(generated) == 32 and generated != bad.get("X-Request-Id")
    missing = await api.get("/no/such/route")
    assert missing.status == 404 and missing.headers["X-Request-Id"]


async def test_access_log_has_route_status_and_no_secrets(api, caplog):
    caplog.set_level(logging.INFO, logger="nexusctl.access")
    user = uuid.uuid4()
    token = _token(user)
    await api.get(
        f"/integrations/user/{user}", params={"cursor": "SECRET-IN-QUERY"}, headers={"Authorization": f"Bearer {token}"}
    )
    records = [r for r in caplog.records if r.name == "nexusctl.access"]
    assert records, "no access log line"
    record = records[-1]
    assert record.route == "/integrations/user/{userId}" and record.status == 400 and record.method == "GET"
    assert record.request_id and record.duration_ms >= 0
    text = caplog.text
    assert token not in text and "SECRET-IN-QUERY" not in text and "Bearer" not in text


async def test_metrics_count_requests_by_route_template(api):
    user = uuid.uuid4()
    headers = {"Authorization": f"Bearer {_token(user)}"}
    for _ in range(3):
        await api.get(f"/integrations/user/{user}", headers=headers)
    await api.get(f"/integrations/user/{uuid.uuid4()}", headers=headers)  # someone else: 403
    await api.get("/not/a/route")
    text = await (await api.get("/metrics")).text()
    assert 'nexus_http_requests_total{method="GET",route="/integrations/user/{userId}",status="200"} 3' in text
    assert 'nexus_http_requests_total{method="GET",route="/integrations/user/{userId}",status="403"} 1' in text
    assert 'route="unmatched",status="404"} 1' in text
    assert 'nexus_http_request_duration_seconds_count{method="GET",route="/integrations/user/{userId}"} 4' in text
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "nexus_http_request_duration_seconds_bucket"
        and sample.labels["route"] == "/integrations/user/{userId}"
    }
    assert buckets["+Inf"] == 4 and sorted(buckets.values()) == list(buckets.values())  # cumulative
    assert str(user) not in text  # labels are templates, not ids


def test_json_log_format():
    record = logging.LogRecord("nexusctl.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.route, record.status, record.request_id = "/x", 200, "abc"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /x" and entry["route"] == "/x" and entry["status"] == 200
    assert entry["time"].endswith("Z")


def test_log_format_is_validated():
    with pytest.raises(ConfigError) as info:
        config.load({"ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "LOG_FORMAT": "xml"})
    assert info.value.message.startswith("LOG_FORMAT:")
