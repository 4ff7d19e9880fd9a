"""TikTok's two kinds of app side by side in one daemon (issue 18): each TikTok connection is made with the kind
the caller picks at initiate (``metadata.provider.tiktokApp``, CLI ``--tiktok-app``; default TIKTOK_APP, here
``login_kit``) and every later use follows the connection, not the process setting: the code redeemed at that
kind's token endpoint, the refresh at its refresh endpoint (also from a CLI whose TIKTOK_APP says the other
kind), the API proxy's host and header, the sync actions and publishing. The emulator refuses each kind's tokens
where the other kind's API is, so a connection that used the wrong kind anywhere could not pass."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import uuid

from emulators.testkit import call
from support.daemons import NEXUSCTL
from test_comments import _reply, _tiktok
from test_sync_scopes import _sync

BUSINESS_SCOPES = {"user.info.basic", "video.list", "comment.list", "comment.list.manage"}
LOGIN_KIT_SCOPES = {"user.info.basic", "user.info.stats", "video.list", "video.publish"}
BUSINESS = {"provider": {"tiktokApp": "business"}}


def _connect(stack, **extra):
    user = uuid.uuid4()
    result = stack.connect("TIKTOK", user, **extra)
    assert result["status"] == "success", result
    return user, result["integrationId"]


def _row(stack, user, integration) -> dict:
    answer = stack.api("GET", f"/integrations/{integration}", user=user)
    assert answer.status == 200, answer.text
    return answer.json()["data"]


def _cli(stack, *args, **env) -> subprocess.CompletedProcess:
    """The CLI against the daemon's database, with a process setting of its own (TIKTOK_APP)."""
    return subprocess.run(
        [str(NEXUSCTL), *map(str, args)], env={**stack.env, **env}, capture_output=True, text=True, timeout=60
    )


def _wait_log(stack, integration, user, which) -> dict:
    deadline = time.monotonic() + 30
    while True:
        logs = stack.api("GET", f"/integrations/{integration}/sync-logs", user=user).json()["data"]
        (log,) = [row for row in logs if which(row)]
        if log["status"] not in ("PENDING", "IN_PROGRESS"):
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.1)  # polling the log, as a client of the API does


def _rotations(emu) -> dict[str, int]:
    """How many refresh tokens of each kind of grant were rotated (a refresh at the other kind's endpoint fails)."""
    kinds = [t.grant.data.get("api") or "login_kit" for t in emu.tokens.values() if t.kind == "refresh" and t.rotated]
    return {kind: kinds.count(kind) for kind in kinds}


def _refused(answer, *words) -> None:
    assert (answer.status, answer.json()["error"]["code"]) == (400, "VALIDATION_ERROR"), answer.text
    for word in words:
        assert word in answer.json()["error"]["message"], answer.text


def test_a_login_kit_and_a_business_connection_live_side_by_side(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    ids, video = _tiktok(emu, 3)

    asked = stack.initiate("TIKTOK", uuid.uuid4(), metadata={**BUSINESS, "team": "social"})
    assert asked.status == 200, asked.text
    consent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(asked.json()["data"]["authorizationUrl"]).query))
    assert set(consent["scope"].split(",")) == BUSINESS_SCOPES, consent
    assert consent["client_key"] == emu.business_client_id, consent  # the Business app's own (TIKTOK_BUSINESS_...)
    default = stack.initiate("TIKTOK", uuid.uuid4())
    consent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(default.json()["data"]["authorizationUrl"]).query))
    assert set(consent["scope"].split(",")) == LOGIN_KIT_SCOPES, consent  # TIKTOK_APP's kind (login_kit)
    assert consent["client_key"] == emu.client_id, consent  # the Login Kit app's client key (TIKTOK_CLIENT_ID)

    kit_user, kit = _connect(stack)
    biz_user, biz = _connect(stack, metadata={**BUSINESS, "team": "social"})
    kit_row, biz_row = _row(stack, kit_user, kit), _row(stack, biz_user, biz)
    assert kit_row["metadata"]["provider"]["tiktokApp"] == "login_kit" and set(kit_row["scope"]) == LOGIN_KIT_SCOPES
    assert biz_row["metadata"]["provider"]["tiktokApp"] == "business" and set(biz_row["scope"]) == BUSINESS_SCOPES
    assert biz_row["metadata"]["team"] == "social" and biz_row["metadata"]["provider"]["accountType"] == "business"
    # each token works only on its own kind's API (the emulator refuses the other), so these prove the exchange
    assert emu.calls["whoami"] == 2

    # the business connection: comments and replies on business-api, Login Kit actions and publishing refused
    log = _sync(stack, biz, biz_user, "fetch_comments")
    assert (log["status"], log["metadata"]["created"]) == ("COMPLETED", 3), log
    assert _reply(stack, biz, biz_user, ids[0], {"text": "thanks", "videoId": video}).status == 201
    for action in ("fetch_posts", "fetch_analytics"):
        refused = stack.api("POST", f"/integrations/{biz}/sync", user=biz_user, body={"action": action})
        _refused(refused, "Login Kit", "tiktokApp=login_kit")

    # the Login Kit connection: posts and analytics on open.tiktokapis.com, comments refused saying how to get them
    log = _sync(stack, kit, kit_user, "fetch_posts")
    assert (log["status"], log["itemsProcessed"]) == ("COMPLETED", 1), log
    assert _sync(stack, kit, kit_user, "fetch_analytics")["status"] == "COMPLETED"
    refused = stack.api("POST", f"/integrations/{kit}/sync", user=kit_user, body={"action": "fetch_comments"})
    _refused(refused, "TikTok API for Business", "metadata.provider.tiktokApp=business")
    _refused(_reply(stack, kit, kit_user, ids[1], {"text": "hi", "videoId": video}), "tiktokApp=business")
    assert emu.calls["comment_list"] == 1 and emu.calls["comment_reply"] == 1  # only the business connection's

    # health: each offers its own kind's capabilities and misses no scope
    kit_health = stack.api("GET", f"/integrations/{kit}/health", user=kit_user).json()["data"]
    biz_health = stack.api("GET", f"/integrations/{biz}/health", user=biz_user).json()["data"]
    assert kit_health["scopes"]["missing"] == [] and biz_health["scopes"]["missing"] == [], (kit_health, biz_health)

    # the API proxy: Login Kit's host with a bearer token; business-api with Access-Token and the business_id
    mine = stack.api("GET", f"/integrations/{kit}/proxy/v2/user/info/?fields=open_id,display_name", user=kit_user)
    assert mine.status == 200 and mine.json()["data"]["user"]["open_id"] == emu.account["open_id"], mine.text
    query = urllib.parse.urlencode({"business_id": emu.account["open_id"], "fields": '["display_name"]'})
    theirs = stack.api("GET", f"/integrations/{biz}/proxy/open_api/v1.3/business/get/?{query}", user=biz_user)
    assert theirs.status == 200 and theirs.json()["code"] == 0, theirs.text
    assert theirs.json()["data"]["display_name"] == emu.account["display_name"]

    # publishing: a video for the business connection's user is skipped with the reason, the Login Kit one's not
    for user, skipped in ((biz_user, True), (kit_user, False)):
        _, data = stack.ingest_content(
            user, "A video", media=[{"type": "video", "url": "https://cdn.example.com/v.mp4"}]
        )
        (queued,) = data["syncLogs"]
        assert ("TikTok API for Business" in (queued.get("skipped") or "")) is skipped, queued
        if not skipped:  # the Login Kit connection's goes to TikTok's Content Posting API: wait for it to end
            log = _wait_log(stack, kit, kit_user, lambda row: row["action"] == "publish")
            assert log["status"] == "COMPLETED" and log["metadata"]["result"]["publishId"], log
    assert emu.calls["publish_init"] == 1  # the Login Kit connection's only


def test_each_refresh_goes_to_its_own_kind_whatever_the_process_setting_says(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    ids, video = _tiktok(emu, 2)
    kit_user, kit = _connect(stack)
    biz_user, biz = _connect(stack, metadata=BUSINESS)

    # through the daemon (TIKTOK_APP unset: login_kit) ...
    for user, integration in ((kit_user, kit), (biz_user, biz)):
        refreshed = stack.api("POST", f"/integrations/{integration}/refresh", user=user)
        assert refreshed.status == 200, refreshed.text
    assert _rotations(emu) == {"business": 1, "login_kit": 1}  # each at its own kind's refresh endpoint
    # ... and through a CLI told the other kind is the default: neither connection changes kind
    for integration, setting in ((kit, "business"), (biz, "login_kit")):
        done = _cli(stack, "integrations", "refresh", integration, "--json", TIKTOK_APP=setting)
        assert done.returncode == 0, (done.stdout, done.stderr)
    assert _rotations(emu) == {"business": 2, "login_kit": 2}

    # the new tokens still work where only their own kind's work (the refresh answers kept the kind)
    assert _row(stack, kit_user, kit)["metadata"]["provider"]["tiktokApp"] == "login_kit"
    assert _row(stack, biz_user, biz)["metadata"]["provider"]["tiktokApp"] == "business"
    assert _sync(stack, kit, kit_user, "fetch_posts")["status"] == "COMPLETED"
    log = _sync(stack, biz, biz_user, "fetch_comments")
    assert (log["status"], log["metadata"]["created"]) == ("COMPLETED", 2), log


def test_the_cli_connects_either_kind(stack, fresh_emulators):
    emu = stack.emulators["TIKTOK"]
    _tiktok(emu, 1)
    user = uuid.uuid4()
    started = stack.cli("integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "business", "--json")
    assert started.returncode == 0, (started.stdout, started.stderr)
    url = json.loads(started.stdout)["authorizationUrl"]
    consent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert set(consent["scope"].split(",")) == BUSINESS_SCOPES, consent
    back = call("GET", url).location  # the user consents; TikTok sends the browser to the daemon's callback
    final = urllib.parse.parse_qs(urllib.parse.urlsplit(call("GET", back).location).query)
    assert final["status"] == ["success"], final
    (integration,) = final["integrationId"]
    assert _row(stack, user, integration)["metadata"]["provider"]["tiktokApp"] == "business"
    assert _sync(stack, integration, user, "fetch_comments")["status"] == "COMPLETED"

    # a CLI whose TIKTOK_APP is business still connects Login Kit when asked
    started = _cli(
        stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "login_kit", TIKTOK_APP="business"
    )
    assert started.returncode == 0, (started.stdout, started.stderr)
    consent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started.stdout.strip().splitlines()[0]).query))
    assert set(consent["scope"].split(",")) == LOGIN_KIT_SCOPES, consent


def test_a_kind_that_is_not_one_is_a_validation_error(stack):
    user = uuid.uuid4()
    for metadata, words in (
        ({"provider": {"tiktokApp": "ads"}}, ("metadata.provider.tiktokApp", "login_kit", "business")),
        ({"provider": {"tiktokApp": 1}}, ("metadata.provider.tiktokApp",)),
        ({"provider": {"tiktokApp": "business", "openId": "x"}}, ("only metadata.provider.tiktokApp",)),
        ({"provider": "business"}, ("only metadata.provider.tiktokApp",)),
    ):
        _refused(stack.initiate("TIKTOK", user, metadata=metadata), *words)
    # other providers' metadata.provider stays theirs: reserved
    _refused(stack.initiate("DISCORD", user, metadata=BUSINESS), "metadata.provider is reserved")
    bad = stack.cli("integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "ads")
    assert bad.returncode == 2 and "tiktokApp" in bad.stdout + bad.stderr, (bad.stdout, bad.stderr)
    other = stack.cli("integrations", "connect", "DISCORD", "--user", user, "--tiktok-app", "business")
    assert other.returncode == 2 and "TIKTOK" in other.stdout + other.stderr, (other.stdout, other.stderr)


def test_providers_show_lists_both_kinds(stack):
    shown = stack.cli("providers", "show", "TIKTOK", "--json")
    assert shown.returncode == 0, shown.stderr
    apps = json.loads(shown.stdout)["tiktokApps"]
    assert apps["login_kit"]["default"] is True and apps["business"]["default"] is False
    assert set(apps["business"]["scopes"]) == BUSINESS_SCOPES and set(apps["login_kit"]["scopes"]) == LOGIN_KIT_SCOPES
    assert apps["business"]["actions"] == ["fetch_comments", "reply_comment"]
    assert apps["business"]["apiHeader"] == "Access-Token"
    assert apps["business"]["tokenUrl"].endswith("/open_api/v1.3/tt_user/oauth2/token/"), apps["business"]
    assert apps["login_kit"]["tokenUrl"].endswith("/v2/oauth/token/"), apps["login_kit"]
    assert set(apps["login_kit"]["actions"]) == {"fetch_posts", "fetch_analytics", "publish"}


def test_a_kind_whose_app_credentials_are_unset_is_refused_up_front(stack, fresh_emulators):
    """Each kind of TikTok app is an app of its own at TikTok with its own credentials (Login Kit: TIKTOK_CLIENT_ID /
    _SECRET; TikTok API for Business: TIKTOK_BUSINESS_CLIENT_ID / _SECRET). A connect with a kind whose credentials
    are not set is refused at initiate, as an unconfigured provider is (PROVIDER_NOT_CONFIGURED, naming them),
    instead of a consent whose code exchange TikTok would refuse; the other kind still connects."""
    user = uuid.uuid4()
    unset = {"TIKTOK_BUSINESS_CLIENT_ID": "", "TIKTOK_BUSINESS_CLIENT_SECRET": ""}
    refused = _cli(stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "business", **unset)
    assert refused.returncode == 26 and "PROVIDER_NOT_CONFIGURED" in refused.stderr, (refused.stdout, refused.stderr)
    assert "TIKTOK_BUSINESS_CLIENT_ID and TIKTOK_BUSINESS_CLIENT_SECRET" in refused.stderr, refused.stderr
    assert "http" not in refused.stdout, refused.stdout  # no consent URL to open
    # ... and TIKTOK_APP=business makes it the default kind: the same refusal for a connect that chooses none.
    default = _cli(stack, "integrations", "connect", "TIKTOK", "--user", user, TIKTOK_APP="business", **unset)
    assert default.returncode == 26 and "TIKTOK_BUSINESS_CLIENT_SECRET" in default.stderr, default.stderr
    half = _cli(
        stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "business",
        TIKTOK_BUSINESS_CLIENT_SECRET="",
    )  # fmt: skip
    assert half.returncode == 26 and "set TIKTOK_BUSINESS_CLIENT_SECRET" in half.stderr, half.stderr
    assert "TIKTOK_BUSINESS_CLIENT_ID" not in half.stderr, half.stderr  # only what is missing
    # The Login Kit app, whose credentials are set, connects as ever; and the other way round.
    kit = _cli(stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "login_kit", **unset)
    assert kit.returncode == 0, kit.stderr
    no_kit = {"TIKTOK_CLIENT_ID": "", "TIKTOK_CLIENT_SECRET": ""}
    refused = _cli(stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "login_kit", **no_kit)
    assert refused.returncode == 26 and "TIKTOK_CLIENT_ID and TIKTOK_CLIENT_SECRET" in refused.stderr, refused.stderr
    business = _cli(stack, "integrations", "connect", "TIKTOK", "--user", user, "--tiktok-app", "business", **no_kit)
    assert business.returncode == 0, business.stderr
    consent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(business.stdout.strip().splitlines()[0]).query))
    assert consent["client_key"] == stack.emulators["TIKTOK"].business_client_id, consent
    shown = json.loads(_cli(stack, "providers", "show", "TIKTOK", "--json", **unset).stdout)
    assert shown["configured"] is True and shown["tiktokApps"]["login_kit"]["configured"] is True, shown
    assert shown["tiktokApps"]["business"]["configured"] is False, shown["tiktokApps"]
    assert shown["tiktokApps"]["business"]["missing"] == list(unset), shown["tiktokApps"]
