"""Request ids, access logs without secrets, Prometheus metrics, JSON logs."""

from __future__ import annotations

import json
import logging
import time
import uuid

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.tokens import configured_secret, mint

from nexusctl import config
from nexusctl.daemon import observe
from nexusctl.daemon.app import create_app
from nexusctl.daemon.observe import JsonFormatter
from nexusctl.errors import ConfigError, ProviderError


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


async def test_access_line_record_is_what_make_record_makes(api, caplog):
    """The access record is built from a template (daemon.observe._access_record): a formatter reading any of
    LogRecord's attributes (a LOG format with %(process)d, %(threadName)s, %(filename)s...) finds them as
    log.makeRecord would have set them, the time included."""
    caplog.set_level(logging.INFO, logger="nexusctl.access")
    for _ in range(2):  # the second from the template the first one made
        before = time.time()
        await api.get("/health")
        after = time.time()
    record = [r for r in caplog.records if r.name == "nexusctl.access"][-1]
    made = logging.getLogger("nexusctl.access").makeRecord(
        "nexusctl.access", logging.INFO, observe.__file__, 0, record.msg, record.args, None
    )
    timed = ("created", "msecs", "relativeCreated", "message", "asctime")  # and what formatting sets
    assert {k: v for k, v in vars(record).items() if k not in timed and k not in made.__dict__} == {
        "action": "http_request",
        "method": "GET",
        "route": "/health",
        "status": 200,
        "duration_ms": record.duration_ms,
        "request_id": record.request_id,
    }
    assert {k: v for k, v in vars(made).items() if k not in timed} == {
        k: v for k, v in vars(record).items() if k in made.__dict__ and k not in timed
    }
    assert before <= record.created <= after and record.msecs == int(record.created * 1000) % 1000
    assert made.relativeCreated - 1000 <= record.relativeCreated <= made.relativeCreated
    assert record.getMessage().startswith("GET /health 200 ")


def _breaks_mid_answer(error: Exception):
    """A streamed answer's handler that raises ``error`` after its status and first bytes went out."""

    async def handler(request):
        answer = observe.Streamed(status=200, headers={"Content-Type": "application/octet-stream"})
        request[observe.STREAMED] = answer
        await answer.prepare(request)
        await answer.write(b"x" * 1000)
        raise error

    return handler


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a failure after the status went out"), ProviderError("a failure after the status went out")],
    ids=["unexpected", "ours"],
)
async def test_a_streamed_answer_that_fails_midway_keeps_its_status_and_is_cut_short(
    db_url, aiohttp_client, caplog, error
):
    """The error boundary cannot answer 500 (or 502) once a streamed answer's status went out: the caller gets the
    200 it was sent and a truncated body (never a second status line), and the request's record says 200 and why
    the body is short, in the text line, the JSON line's ``error`` and the metrics."""
    app = create_app(config.load())
    app.router.add_get("/test/breaks", _breaks_mid_answer(error))
    api = await aiohttp_client(app)
    caplog.set_level(logging.INFO, logger="nexusctl.access")
    response = await api.get("/test/breaks")
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):  # truncated: the chunked body never ended
        await response.read()
    (record,) = [r for r in caplog.records if r.name == "nexusctl.access" and r.route == "/test/breaks"]
    assert record.status == 200 and record.error == "body cut short: an unexpected error"
    assert record.getMessage().startswith("GET /test/breaks 200 ")
    assert record.getMessage().endswith("ms (body cut short: an unexpected error)")
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["status"], entry["error"]) == (200, "body cut short: an unexpected error")
    assert "a failure after the status went out" in caplog.text  # said (an unexpected one with its traceback)
    text = await (await api.get("/metrics")).text()
    assert 'nexus_http_requests_total{method="GET",route="/test/breaks",status="200"} 1' in text
    assert 'route="/test/breaks",status="500"' not in text
    assert 'nexus_http_answers_cut_short_total{cause="error",method="GET",route="/test/breaks"} 1' in text


def test_json_log_line_with_what_orjson_refuses():
    # A percent-decoded path can hold a lone surrogate, which orjson refuses: the standard library's encoder
    # writes that line, as it wrote every line before.
    record = logging.LogRecord("nexusctl.access", logging.INFO, __file__, 1, "GET %s", ("/a\udc80",), None)
    record.status = 404
    line = JsonFormatter().format(record)
    assert json.loads(line)["message"] == "GET /a\udc80" and json.loads(line)["status"] == 404
    plain = logging.LogRecord("nexusctl.access", logging.INFO, __file__, 1, "GET %s", ("/a",), None)
    assert json.loads(JsonFormatter().format(plain))["message"] == "GET /a"


def test_log_format_is_validated():
    with pytest.raises(ConfigError) as info:
        config.load({"ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "LOG_FORMAT": "xml"})
    assert info.value.message.startswith("LOG_FORMAT:")
