"""The error table: spec codes, HTTP statuses, distinct exit codes, documented."""

from __future__ import annotations

from pathlib import Path

from nexusctl import errors

SPEC = {
    "OAUTH_FAILED": 400,
    "INVALID_PROVIDER": 400,
    "TOKEN_EXPIRED": 401,
    "REFRESH_FAILED": 401,
    "INTEGRATION_NOT_FOUND": 404,
    "WEBHOOK_NOT_FOUND": 404,
    "RATE_LIMITED": 429,
    "SYNC_FAILED": 500,
    "PROVIDER_ERROR": 502,
}
README = Path(__file__).resolve().parents[1] / "README.md"


def _concrete():
    # Abstract parents (NexusError, NotFound) share codes with nothing a user sees.
    return [c for c in errors.all_error_classes() if c not in (errors.NexusError, errors.NotFound)]


def test_spec_codes_have_the_spec_statuses():
    by_code = {cls.code: cls for cls in _concrete()}
    for code, status in SPEC.items():
        assert by_code[code].http_status == status, code


def test_each_code_has_its_own_exit_code():
    classes = [c for c in _concrete() if c is not errors.InvalidProvider]
    exit_codes = [c.exit_code for c in classes]
    assert len(exit_codes) == len(set(exit_codes)), sorted(exit_codes)
    assert all(c.exit_code not in (0, 1, 130) for c in classes)


def test_default_message_is_the_docstring():
    assert errors.IntegrationNotFound().message == "Integration not found."
    assert str(errors.RateLimited("slow down")) == "slow down"


def test_readme_documents_every_exit_code():
    text = README.read_text()
    for cls in _concrete():
        assert f"`{cls.code}`" in text, f"README lacks {cls.code}"
        assert f"| {cls.exit_code} |" in text, f"README lacks exit code {cls.exit_code}"


def test_the_table_is_the_same_whatever_is_imported():
    """A refinement elsewhere (StateUnreadable is an OAUTH_FAILED) joins neither the docs nor the exit-code
    table: both failed when a test importing core.oauth_states ran first."""
    import nexusctl.core.oauth_states as states

    assert issubclass(states.StateUnreadable, errors.OAuthFailed)
    assert states.StateUnreadable not in errors.all_error_classes()
    assert {c.__module__ for c in errors.all_error_classes()} == {"nexusctl.errors"}
