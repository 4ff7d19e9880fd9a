"""Key rotation: every secret re-encrypted once, resumable, never clobbering a newer value."""

from __future__ import annotations

import logging

import pytest

from nexusctl.core import key_usage, keys
from nexusctl.crypto import Keyring, key_id
from nexusctl.db.models import ALL_MODELS, Integration, Webhook
from nexusctl.db.secrets import models_with_secrets, seal, unseal

OLD = bytes(range(32))  # the conftest's ENCRYPTION_KEY: make_integration seals with it
NEW = bytes(range(64, 96))
STRANGER = bytes(range(160, 192))


@pytest.fixture
def seeded(database, make_integration):
    plain = {}
    for i in range(5):
        row = make_integration(access_token=f"access-{i}", refresh_token=f"refresh-{i}" if i % 2 else None)
        plain[(row.id, "access_token")] = f"access-{i}"
        if i % 2:
            plain[(row.id, "refresh_token")] = f"refresh-{i}"
        hook = Webhook(integration=row, url="https://example.com/h")
        seal(Keyring(OLD), hook, "secret", f"whsec_{i}")
        hook.save(force_insert=True)
        plain[(hook.id, "secret")] = f"whsec_{i}"
    return plain


def _all_open_under(ring, plain):
    for (row_id, column), value in plain.items():
        model = Webhook if column == "secret" else Integration
        row = model.get_by_id(row_id)
        assert getattr(row, column).startswith(ring.current_prefix)
        assert unseal(ring, row, column) == value


def test_rotate_rewrites_every_secret_once(seeded):
    ring = Keyring(NEW, [OLD])
    assert keys.count_stale(ring) == 10  # 5 integrations (+ 2 refresh tokens) rows, 5 webhooks
    report = keys.rotate(ring, batch_size=2)
    assert report.rewritten == len(seeded) == 12
    assert report.by_table == {"integrations": 7, "webhooks": 5}
    assert report.failed == 0
    _all_open_under(Keyring(NEW), seeded)  # the old key is no longer needed
    assert keys.rotate(ring).rewritten == 0


def test_dry_run_changes_nothing(seeded):
    before = [r.access_token for r in Integration.select().order_by(Integration.id)]
    report = keys.rotate(Keyring(NEW, [OLD]), dry_run=True)
    assert report.rewritten == 12
    assert [r.access_token for r in Integration.select().order_by(Integration.id)] == before


def test_an_interrupted_rotation_resumes_where_it_stopped(seeded):
    ring = Keyring(NEW, [OLD])
    batches = []

    def stop_after_first(n):
        batches.append(n)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        keys.rotate(ring, batch_size=2, progress=stop_after_first)
    done_first = sum(
        getattr((Webhook if column == "secret" else Integration).get_by_id(row_id), column).startswith(
            ring.current_prefix
        )
        for row_id, column in seeded
    )
    assert 0 < done_first < 12
    second = keys.rotate(ring, batch_size=2)
    assert done_first + second.rewritten == 12
    _all_open_under(ring, seeded)


def test_values_under_an_unknown_key_are_reported_and_the_rest_rotated(seeded, database):
    victim = Integration.select().order_by(Integration.id).first()
    seal(Keyring(STRANGER), victim, "access_token", "lost")
    victim.save()
    report = keys.rotate(Keyring(NEW, [OLD]))
    assert report.failed == 1 and report.rewritten == 11
    assert victim.access_token.split(".")[1] in report.failures[0]
    assert "lost" not in " ".join(report.failures)


def test_a_value_changed_during_rotation_is_not_overwritten(seeded, monkeypatch):
    ring = Keyring(NEW, [OLD])
    target = Integration.select().order_by(Integration.id).first()
    real_decrypt = ring.decrypt

    def decrypt_while_someone_writes(stored, place):
        if place.row_id == str(target.id) and place.column == "access_token":
            fresh = Integration.get_by_id(target.id)
            seal(ring, fresh, "access_token", "written-meanwhile")
            fresh.save()
        return real_decrypt(stored, place)

    monkeypatch.setattr(ring, "decrypt", decrypt_while_someone_writes)
    keys.rotate(ring)
    assert unseal(Keyring(NEW), Integration.get_by_id(target.id), "access_token") == "written-meanwhile"


def test_a_channel_webhook_token_is_rotated_with_the_other_secrets(database, make_integration):
    """Discord's webhook.incoming token (integrations.channel_webhook_token) is a secret like the tokens."""
    from nexusctl.enums import Provider

    row = make_integration(provider=Provider.DISCORD, access_token="access-dc", refresh_token=None)
    seal(Keyring(OLD), row, "channel_webhook_token", "webhook-token-dc")
    row.save()
    report = keys.rotate(Keyring(NEW, [OLD]))
    assert report.rewritten == 2 and report.failed == 0
    stored = Integration.get_by_id(row.id)
    assert stored.channel_webhook_token.startswith(Keyring(NEW).current_prefix)
    assert unseal(Keyring(NEW), stored, "channel_webhook_token") == "webhook-token-dc"


def test_the_key_sweep_of_ready_reads_bounded_steps_and_sees_a_rotation_within_two_passes(seeded, caplog):
    """/ready's KeySweep: each step reads at most ``rows`` rows of each table with secrets, by primary key (a
    LIMIT query, never a scan), and what it answers follows the table a pass behind at most."""
    sweep, daemon_on_new = key_usage.KeySweep(rows=2), Keyring(NEW)  # a daemon given only the new key
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        assert sweep.missing(daemon_on_new) == {key_id(OLD)}  # the first two rows already tell
    selects = [r.getMessage() for r in caplog.records if "SELECT" in r.getMessage()]
    tables = [model for model, _ in models_with_secrets(ALL_MODELS)]
    assert len(selects) == len(tables) and all("LIMIT" in q and "ORDER BY" in q for q in selects), selects

    keys.rotate(Keyring(NEW, [OLD]))  # mid-pass: rows 1-2 of each table were seen under the old key
    answers = [sweep.missing(daemon_on_new) for _ in range(5)]  # 5 rows a table: a pass is 3 steps
    assert answers == [{key_id(OLD)}] * 4 + [set()]  # the pass under way, then a clean one

    stranger = Keyring(STRANGER)
    row = Integration.select().order_by(Integration.id.desc()).first()  # the last row a pass reaches
    seal(stranger, row, "access_token", "written by a daemon on another key")
    row.save()
    assert [sweep.missing(daemon_on_new) for _ in range(3)][-1] == {key_id(STRANGER)}
    assert key_usage.missing_key_ids(daemon_on_new) == {key_id(STRANGER)}  # doctor's full read agrees
