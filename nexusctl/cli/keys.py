"""`nexusctl keys ...`: encryption keys for stored secrets."""

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import DryRun, Json
from nexusctl.errors import DecryptionFailed

app = typer.Typer(
    help="Encryption keys: generate new ones, re-encrypt under the current one.\n\n"
    "Example:  nexusctl keys rotate --dry-run",
    no_args_is_help=True,
)


@app.command("generate")
def generate_cmd(ctx: typer.Context, as_json: Json = False) -> None:
    """Print a new random key (base64 of 32 bytes) for ENCRYPTION_KEY; --json prints {"key": ...}.

    The key is the output (stdout, nowhere else): redirect it to where it is kept.

    Example:  export ENCRYPTION_KEY="$(nexusctl keys generate)"
    """
    # start-up: only this command needs it
    from nexusctl.config import generate_key

    key = generate_key()
    out(ctx).json({"key": key}) if as_json else out(ctx).value(key)


@app.command("rotate")
def rotate_cmd(
    ctx: typer.Context,
    dry_run: DryRun = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per transaction.")] = 500,
    as_json: Json = False,
) -> None:
    """Re-encrypt every stored secret under the current ENCRYPTION_KEY.

    Old keys must still be listed in ENCRYPTION_OLD_KEYS while this runs. The development key file
    (<data dir>/encryption.key, used while ENCRYPTION_KEY was unset) counts as an old key once
    ENCRYPTION_KEY is set. Resumable: run it again after an interruption and it does what is left.

    Example:  ENCRYPTION_OLD_KEYS="$OLD" ENCRYPTION_KEY="$NEW" nexusctl keys rotate
    """
    # start-up: only this command needs it
    from nexusctl.core import keys
    from nexusctl.crypto import development_key_left_behind, key_id, keyring_from_settings

    st = state(ctx)
    st.database()
    keyring = st.keyring
    output = out(ctx)
    left_behind = development_key_left_behind(st.settings)
    if left_behind is not None and key_id(left_behind[0]) not in keyring.key_ids:
        # The README's development set-up keeps its key in that file: after `export ENCRYPTION_KEY=<new>`
        # the secrets are still under it, and ENCRYPTION_OLD_KEYS="$ENCRYPTION_KEY" gave nothing.
        keyring = keyring_from_settings(st.settings, extra=[left_behind[0]])
        output.info(f"Also opening secrets under the development key in {left_behind[1]} (ENCRYPTION_KEY is set)")
    # The total costs a counting pass, so only when a bar shows it. A row is counted
    # once however many of its columns are stale, as rotate reports its batches.
    total = keys.count_stale(keyring) if output.shows_progress else None
    with output.progress("checking" if dry_run else "re-encrypting", total=total) as update:
        report = keys.rotate(
            keyring, dry_run=dry_run, batch_size=batch_size, progress=lambda rows: update(advance=rows)
        )
        if st.settings.redis_url is not None:
            keys.rotate_redis_flows(st.settings, keyring, report, dry_run=dry_run)
    verb = "Would re-encrypt" if dry_run else "Re-encrypted"
    output.success(
        f"{verb} {report.rewritten} secret(s) under key {report.key_id}"
        + (f", {report.failed} could not be decrypted" if report.failed else "")
    )
    if as_json:
        output.json({**report.to_dict(), "dryRun": dry_run})
    for message in report.failures:
        output.error(message)
    if report.failed:
        raise DecryptionFailed(
            f"{report.failed} secret(s) could not be decrypted with any configured key: give the key they were "
            'written under (the previous ENCRYPTION_KEY) in ENCRYPTION_OLD_KEYS, e.g. ENCRYPTION_OLD_KEYS="$OLD_KEY" '
            "nexusctl keys rotate (comma-separate several)"
        )
