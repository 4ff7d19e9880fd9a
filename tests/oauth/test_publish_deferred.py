"""A reel Instagram takes longer to process is published by the real daemon later, once.

Through `nexusctl daemon` (SQLite and PostgreSQL, SYNC_POLL_INTERVAL=1):
Instagram connected by the browser journey, content.published ingested by a
service, the emulator answering IN_PROGRESS for more than the first run's
~5 s of looking. The publish log goes back to PENDING with a run_after and
the container id, the daemon's sync runner starts it again once run_after
has come, and the reel is published exactly once from the same container.
"""

from __future__ import annotations

import json
import time
import uuid

from support import clock

VIDEO = {"type": "video", "url": "https://cdn.nexus.test/p/5/clip.mp4"}


def _log(stack, content_id: str):
    rows = stack.sql(
        "SELECT status, run_after, metadata, error FROM integration_sync_logs WHERE resource_id = %s", content_id
    )
    if not rows:
        return None
    status, run_after, metadata, error = rows[0]
    return status, run_after, json.loads(metadata) if isinstance(metadata, str) else metadata, error


def _looking(stack, content_id: str) -> bool:
    """The first run is under way (IN_PROGRESS, not deferred yet): it waits on Instagram between its reads."""
    seen = _log(stack, content_id)
    return seen is not None and seen[0] == "IN_PROGRESS" and not seen[2].get("pending")


def _wait_for(stack, content_id: str, wanted, timeout: float):
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        seen = _log(stack, content_id)
        if seen is not None and wanted(seen):
            return seen
        time.sleep(0.1)  # polling what the daemon does on its own
    raise AssertionError(f"timed out; the log is {seen}\n{stack.logs()[-3000:]}")


def test_a_reel_still_processing_is_published_by_the_daemon_later_once(stack, fresh_emulators):
    ig = stack.emulators["INSTAGRAM"]
    user = uuid.uuid4()
    result = stack.connect("INSTAGRAM", user)
    assert result["status"] == "success", result
    # 4 reads in the first run (~5 s), all IN_PROGRESS; the deferred run's first read is FINISHED.
    ig.reels_processing_polls = len((0.5, 1.0, 1.5, 2.0))
    content_id = f"reel-{uuid.uuid4().hex[:8]}"
    body = {
        "type": "content.published",
        "id": f"evt-{content_id}",
        "data": {"userId": str(user), "contentId": content_id, "title": "Slow reel", "media": [VIDEO]},
    }
    answer = stack.api("POST", "/integrations/events/ingest", user=uuid.uuid4(), roles=("service",), body=body)
    assert answer.status == 200, answer.text

    # The first run waits between its reads of the container (Instagram's processing): time passes them.
    _wait_for(stack, content_id, lambda s: s[0] == "IN_PROGRESS" or s[2].get("pending"), 30)
    clock.pass_while(stack.emulators, lambda: _looking(stack, content_id), 2.0, 30, "the first run to defer")
    status, run_after, metadata, error = _wait_for(
        stack, content_id, lambda s: s[0] != "IN_PROGRESS" and s[2].get("pending"), 30
    )
    assert status == "PENDING" and run_after is not None and error is None, (status, error)
    (container,) = ig.containers
    assert metadata["pending"]["containerId"] == container and metadata["pending"]["checks"] == 1
    assert ig.calls["media_publish"] == 0

    clock.pass_until(stack.emulators, run_after)  # the daemon's sync runner takes the deferred run then
    status, run_after, metadata, error = _wait_for(stack, content_id, lambda s: s[0] in ("COMPLETED", "FAILED"), 60)
    assert status == "COMPLETED", error
    (media,) = ig.records_of("media")
    assert metadata["result"] == {"mediaId": media["id"], "containerId": container}
    assert media["media_product_type"] == "REELS" and media["caption"] == "Slow reel"
    assert ig.calls["create_media"] == 1 and ig.calls["media_publish"] == 1 and ig.calls["container_status"] == 5
    assert run_after is None  # cleared when the deferred run started
