"""Schemathesis hooks for tests/fault/test_api_fuzz.py (loaded by `st run` via SCHEMATHESIS_HOOKS).

Right before each generated request is sent, ``before_call``:

- picks who calls (the world's owner most often, else a service, an admin or
  another user), so authorised code paths are fuzzed and not only the 401s;
- in positive cases, swaps most generated ids for rows that exist (the seeded
  integration, webhook and delivery, the owner's user id), so id routes reach
  real rows rather than 404s, and fills in the values no schema can state (an
  allowed redirect origin, a working API key). DELETE and PATCH get rows made
  for them on the spot, so the shared rows stay there and active all run long.

The choices are a pure function of the generated case (values, never object
addresses), so Hypothesis can replay and shrink a failure, except for one rule:
the first positive case of each operation is always the owner's, on real rows
with the known values, so every operation answers with success at least once
whatever the draw (Hypothesis may generate a single distinct case for a route
whose only input is an id, and one unlucky draw then made it a 404 all run).
The world comes from the JSON file in $FAULT_WORLD; FAULT_TRACE=<file> (passed
on by the test) appends one JSON line per case.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
import uuid
import zlib

import jwt
import schemathesis

WORLD = json.loads(open(os.environ["FAULT_WORLD"]).read())
MARK = "X-Fault-Caller"  # set once per case: probes copied from it keep their (removed) auth
CALLERS = ("owner", "owner", "owner", "owner", "service", "admin", "other")
REAL = 0.75  # share of positive cases that use existing rows
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SEEN: set[tuple[str, str]] = set()  # operations that have had their first positive case


def _stable(value) -> str:
    """A case's value as text that is the same in every run (schemathesis' NotSet has no stable repr)."""
    return json.dumps(value, default=lambda v: type(v).__name__, sort_keys=True)


def _token(subject: str, *roles: str) -> str:
    claims = {"sub": subject, "exp": int(time.time()) + 3600, **({"roles": list(roles)} if roles else {})}
    return jwt.encode(claims, WORLD["jwtSecret"], algorithm="HS256")


def _api(method: str, path: str, owner: str, body: dict) -> dict:
    request = urllib.request.Request(
        WORLD["base"] + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {_token(owner)}"},
    )
    with _OPENER.open(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _fresh_rows(owner: str) -> dict[str, str]:
    """A SendGrid integration with one webhook, for one DELETE or PATCH to change."""
    integration = _api(
        "POST",
        "/integrations/api-key",
        owner,
        {"userId": owner, "provider": "SENDGRID", "apiKey": WORLD["sendgridKey"]},
    )["id"]
    webhook = _api(
        "POST",
        "/integrations/webhooks",
        owner,
        {"integrationId": integration, "url": WORLD["receiverUrl"], "events": ["*"]},
    )["id"]
    return {"id": integration, "webhookId": webhook}


def _negative(case, location: str) -> bool:
    meta = getattr(case, "meta", None)
    if meta is None:
        return False
    try:
        from schemathesis.core.parameters import ParameterLocation

        return meta.is_negative_at(ParameterLocation(location))
    except Exception:  # noqa: BLE001 - an API change: treat as negative, never turn bad input into good
        return True


def _about_auth(case) -> bool:
    """A case made to test the Authorization header itself (e.g. "missing Authorization"): leave it be."""
    meta = getattr(case, "meta", None)
    data = getattr(getattr(meta, "phase", None), "data", None)
    return str(getattr(data, "parameter", "") or "").lower() == "authorization" or _negative(case, "header")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers if case.headers is not None else {}
    if MARK in headers:
        return  # a probe copied from a case already handled (e.g. sent again without auth)
    if _about_auth(case):
        headers[MARK] = "as-generated"
        case.headers = headers
        return
    seed = _stable([case.method, case.path, case.path_parameters, case.query, case.body])
    rnd = random.Random(zlib.crc32(seed.encode()))
    # A stateful sequence (create, then use what was created) is one user's: the owner all along.
    stateful = "stateful" in str(getattr(getattr(getattr(case, "meta", None), "phase", None), "name", "")).lower()
    operation = (case.method.upper(), case.path)
    first = (
        not stateful
        and operation not in _SEEN
        and not any(_negative(case, where) for where in ("path", "query", "body"))
    )
    if first:
        _SEEN.add(operation)
    caller = "owner" if stateful or first else rnd.choice(CALLERS)
    owner = WORLD["owner"]
    params = case.path_parameters or {}
    # DELETE and PATCH would delete or deactivate the shared rows, also when the stateful phase
    # links an id it saw in an answer: they always get rows of their own.
    destructive = case.method.upper() in ("DELETE", "PATCH")
    shared = destructive and any(str(v) in WORLD["rows"].values() for v in params.values())
    # The stateful phase links ids it got from earlier answers: those are real already (and a check may
    # follow what it deleted), so only the shared rows are swapped there.
    if params and (shared or first or (not stateful and not _negative(case, "path") and rnd.random() < REAL)):
        rows = dict(WORLD["rows"])
        if destructive:
            owner = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            rows.update(_fresh_rows(owner), userId=owner)
        for name in list(case.path_parameters):
            if name in rows:
                case.path_parameters[name] = rows[name]
    if isinstance(case.body, dict) and not _negative(case, "body") and (first or rnd.random() < REAL):
        # Values that pass the checks a schema cannot state (an allowed redirect origin, a working key,
        # a receiver the daemon may reach, a payload the event handlers accept).
        known = {
            "integrationId": WORLD["rows"]["id"],
            "userId": owner,
            "apiKey": WORLD["sendgridKey"],
            "redirectUri": WORLD["redirectUri"],
            "url": WORLD["receiverUrl"],
            "action": WORLD["syncAction"],
            "data": {"userId": str(uuid.UUID(int=rnd.getrandbits(128), version=4))},
        }
        for name, value in known.items():
            if name in case.body:
                case.body[name] = value
    data = case.body.get("data") if isinstance(case.body, dict) else None
    if isinstance(data, dict) and data.get("userId") == WORLD["owner"]:  # user.deleted of the world's owner
        data["userId"] = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    headers.pop("Authorization", None)
    headers["Authorization"] = (
        "Bearer "
        + {
            "owner": lambda: _token(owner),
            "other": lambda: _token(str(uuid.uuid4())),
            "service": lambda: _token("content-service", "service"),
            "admin": lambda: _token(str(uuid.uuid4()), "admin"),
        }[caller]()
    )
    headers[MARK] = caller
    case.headers = headers
    if os.environ.get("FAULT_TRACE"):
        with open(os.environ["FAULT_TRACE"], "a") as trace:
            trace.write(
                json.dumps(
                    [
                        case.method,
                        case.path,
                        caller,
                        case.path_parameters,
                        repr(case.body)[:80],
                        _negative(case, "path"),
                        str(getattr(case.meta, "phase", ""))[:60],
                    ]
                )
                + "\n"
            )
