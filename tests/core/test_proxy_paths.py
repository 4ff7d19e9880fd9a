"""The proxy's path checks and rate-limit signals as the daemon's route calls them (nexusctl.providers.proxy):
answers kept for speed never change an answer."""

from __future__ import annotations

import types

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from nexusctl.errors import UsageProblem
from nexusctl.providers import proxy as targets


def test_a_refused_path_stays_refused_however_often_it_comes_and_what_is_kept_stays_bounded():
    targets._PASSED.clear()
    assert targets.check_path("/v10/users/@me") == "/v10/users/@me"
    for _ in range(3):
        with pytest.raises(UsageProblem):
            targets.check_path("/v10/..%2f..%2fadmin")
        with pytest.raises(UsageProblem):
            targets.join("https://discord.com/api", "//evil.test/x")
    assert targets.check_path("v10/users/@me") == "/v10/users/@me"  # as given, with its slash added
    for i in range(3 * targets._PASSED_MAX):
        targets.check_path(f"/v1/items/{i}")
    targets.check_path("/v1/" + "a" * (targets._PASSED_LENGTH + 1))
    assert len(targets._PASSED) <= targets._PASSED_MAX
    assert all(len(path) <= targets._PASSED_LENGTH for path in targets._PASSED)
    assert str(targets.join("https://discord.com/api", "/v10/users/@me", "a=1")) == (
        "https://discord.com/api/v10/users/@me?a=1"
    )


def test_an_answer_with_no_call_left_is_read_from_aiohttp_headers_whatever_their_case():
    def answer(headers: dict):
        return types.SimpleNamespace(headers=CIMultiDictProxy(CIMultiDict(headers)))

    assert targets.exhausted_wait_of(answer({"x-ratelimit-remaining": "0", "X-RateLimit-Reset-After": "1.5"})) == 2
    assert targets.exhausted_wait_of(answer({"X-Rate-Limit-Remaining": " 0 ", "Retry-After": "7"})) == 7
    assert targets.exhausted_wait_of(answer({"X-RateLimit-Remaining": "4", "Retry-After": "7"})) is None
    assert targets.exhausted_wait_of(answer({"Content-Type": "application/json"})) is None
