"""/metrics: integrations by provider and health status, and tokens expiring within 24 hours."""

from __future__ import annotations

import datetime as dt

import pytest

from nexusctl import config
from nexusctl.core import health_checks
from nexusctl.daemon.app import DB, create_app
from nexusctl.db.fields import utcnow
from nexusctl.enums import Provider


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await aiohttp_client(create_app(config.load()))


async def test_health_gauges(api, make_integration):
    make_integration(provider=Provider.SLACK, is_active=False)
    make_integration(provider=Provider.DISCORD, expires_at=utcnow() + dt.timedelta(hours=2))
    make_integration(provider=Provider.DISCORD, expires_at=utcnow() + dt.timedelta(days=3))
    # The daemon's own health job may have checked them already; this makes sure (on the app's database
    # threads, which SQLite's single writer shares with the job).
    await api.app[DB].run(health_checks.check_due, **health_checks.windows(config.load()))
    text = await (await api.get("/metrics")).text()
    assert 'nexus_integrations{provider="SLACK",status="broken"} 1' in text
    assert 'nexus_integrations{provider="DISCORD",status="healthy"} 2' in text
    assert "# TYPE nexus_integrations gauge" in text and "nexus_tokens_expiring_24h 1" in text
    assert "nexus_http_requests_total" in text  # the request metrics are still there
