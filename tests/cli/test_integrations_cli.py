"""`nexusctl integrations ...` against real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid

from db.models import Integration, IntegrationSyncLog, Webhook, WebhookDelivery
from nexusctl.enums import Provider


def test_list_json_is_the_api_shape_without_tokens(cli, make_integration):
    row = make_integration(provider=Provider.INSTAGRAM, name="@maker", scope=["basic", "publish_content"],
                           access_token="AT-plaintext-1", refresh_token="RT-plaintext-1")
    result = cli("integrations", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["id"] for d in data] == [str(row.id)]
    item = data[0]
    assert item["provider"] == "INSTAGRAM" and item["name"] == "@maker" and item["isActive"] is True
    assert item["scope"] == ["basic", "publish_content"]
    assert not {"accessToken", "refreshToken", "access_token", "refresh_token"} & set(item)
    assert "plaintext" not in result.output and "nx1." not in result.output
