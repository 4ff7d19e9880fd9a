"""The proxy's path checks and rate-limit signals as the daemon's route calls them (nexusctl.providers.proxy):
answers kept for speed never change an answer."""

from __future__ import annotations

import types

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from nexusctl.core import proxy
from nexusctl.errors import UsageProblem
from nexusctl.providers import proxy as targets


def test_a_refused_path_stays_refused_however_often_it_comes_and_a_checked_one_is_not_checked_again(monkeypatch):
    assert targets.check_path("/v10/users/@me") == "/v10/users/@me"
    for _ in range(3):
        with pytest.raises(UsageProblem):
            targets.check_path("/v10/..%2f..%2fadmin")
        with pytest.raises(UsageProblem):
            targets.join("https://discord.com/api", "//evil.test/x")  # a plain str: join checks it
    assert targets.check_path("v10/users/@me") == "/v10/users/@me"  # as given, with its slash added

    checked = targets.check_path("/v10/users/@me")
    assert isinstance(checked, targets.CheckedPath)
    monkeypatch.setattr(targets, "check_path", lambda raw: pytest.fail(f"{raw} checked again"))
    assert str(targets.join("https://discord.com/api", checked, "a=1")) == "https://discord.com/api/v10/users/@me?a=1"


def test_a_request_checked_where_it_came_in_carries_its_checked_path():
    request = proxy.ProxyRequest("GET", "v10/users/@me")
    assert not request.checked
    proxy.check_request(request)
    assert request.checked and request.path == "/v10/users/@me" and isinstance(request.path, targets.CheckedPath)
    for bad in ("/a%3Fb", "/a%23b", "/a%0Ab", "/a?b"):
        with pytest.raises(UsageProblem):
            proxy.check_request(proxy.ProxyRequest("GET", bad))


def test_an_answer_with_no_call_left_is_read_from_aiohttp_headers_whatever_their_case():
    def answer(headers: dict):
        return types.SimpleNamespace(headers=CIMultiDictProxy(CIMultiDict(headers)))

    assert targets.exhausted_wait_of(answer({"x-ratelimit-remaining": "0", "X-RateLimit-Reset-After": "1.5"})) == 2
    assert targets.exhausted_wait_of(answer({"X-Rate-Limit-Remaining": " 0 ", "Retry-After": "7"})) == 7
    assert targets.exhausted_wait_of(answer({"X-RateLimit-Remaining": "4", "Retry-After": "7"})) is None
    assert targets.exhausted_wait_of(answer({"Content-Type": "application/json"})) is None
