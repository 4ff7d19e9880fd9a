"""fetch_posts of TikTok, Instagram, Facebook, YouTube, X and LinkedIn against their emulators."""

from __future__ import annotations

import pytest
from synckit import mint, read_all

from nexusctl.errors import ProviderError, RateLimited, TokenExpired

# --- TikTok -------------------------------------------------------------------------------------

T0 = 1_760_000_000  # epoch seconds of the newest video


def _videos(n):
    return [{"id": f"73{i:017d}", "title": f"video {i}", "create_time": T0 - i * 60,
             "share_url": f"https://www.tiktok.com/@demo/video/73{i:017d}", "view_count": 1000 + i}
            for i in range(n)]


def test_tiktok_reads_every_video_across_cursor_pages(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(45))
    token = mint(fresh_emulators, "TIKTOK", ["user.info.basic", "video.list"])
    pages, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert calls == 3 == fresh_emulators["TIKTOK"].calls["videos"]
    assert [len(p.items) for p in pages] == [20, 20, 5]
    assert [i.external_id for p in pages for i in p.items] == [v["id"] for v in _videos(45)]
    assert pages[0].resume == {"cursor": (T0 - 19 * 60) * 1000} and pages[-1].resume is None
    first = pages[0].items[3].data
    assert first == {"id": "7300000000000000003", "title": "video 3", "createTime": T0 - 180,
                     "shareUrl": "https://www.tiktok.com/@demo/video/7300000000000000003"}


def test_tiktok_resumes_from_a_stored_cursor(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(45))
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    first, _ = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token, max_pages=2)
    rest, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token, resume=first[1].resume)
    assert calls == 1 and [i.external_id for i in rest[0].items] == [v["id"] for v in _videos(45)[40:]]
    assert rest[0].resume is None


def test_tiktok_last_page_exactly_full_ends_on_has_more(fresh_emulators):
    fresh_emulators["TIKTOK"].set_records("videos", _videos(40))
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    pages, calls = read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert calls == 2 and pages[-1].resume is None and sum(len(p.items) for p in pages) == 40


def test_tiktok_errors(fresh_emulators):
    emu = fresh_emulators["TIKTOK"]
    emu.set_records("videos", _videos(3))
    with pytest.raises(TokenExpired):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token="act.not-a-token")
    with pytest.raises(ProviderError, match="video.list") as caught:
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=mint(fresh_emulators, "TIKTOK", ["user.info.basic"]))
    assert not isinstance(caught.value, TokenExpired)
    token = mint(fresh_emulators, "TIKTOK", ["video.list"])
    emu.rate_limit_next("videos", retry_after=40)
    with pytest.raises(RateLimited) as limited:
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert limited.value.retry_after in (39, 40)
    emu.fail_next("videos", 400, {"data": {}, "error": {"code": "invalid_params", "message": "cursor is invalid",
                                                        "log_id": "2026"}})
    with pytest.raises(ProviderError, match="cursor is invalid"):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    emu.fail_next("videos", 200, {"data": {}, "error": {"code": "internal_error", "message": "try later",
                                                        "log_id": "2026"}})
    with pytest.raises(ProviderError, match="internal_error"):
        read_all(fresh_emulators, "TIKTOK", "fetch_posts", token=token)
    assert token not in str(caught.value)
