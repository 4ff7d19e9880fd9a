"""`nexusctl keys ...`: encryption keys for stored secrets."""

from __future__ import annotations

from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import DryRun, Json
from nexusctl.errors import DecryptionFailed

app = typer.Typer(help="Encryption keys: generate new ones, re-encrypt under the current one.", no_args_is_help=True)


@app.command("generate")
def generate_cmd(ctx: typer.Context) -> None:
    """Print a new random key (base64 of 32 bytes) for ENCRYPTION_KEY.

    Example:  export ENCRYPTION_KEY="$(nexusctl keys generate)"
    """
    from nexusctl.config import generate_key

    out(ctx).value(generate_key())


@app.command("rotate")
def rotate_cmd(
    ctx: typer.Context,
    dry_run: DryRun = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per transaction.")] = 500,
    as_json: Json = False,
) -> None:
    """Re-encrypt every stored secret under the current ENCRYPTION_KEY.

    Old keys must still be listed in ENCRYPTION_OLD_KEYS while this runs.
    Resumable: run it again after an interruption and it does what is left.

    Example:  ENCRYPTION_OLD_KEYS="$OLD" ENCRYPTION_KEY="$NEW" nexusctl keys rotate
    """
    from nexusctl.core import keys

    st = state(ctx)
    st.database()
    keyring = st.keyring
    output = out(ctx)
    if output.stdout_is_terminal and not output.quiet and not dry_run:
        from rich.progress import Progress

        with Progress(console=output.err, transient=True) as bar:
            task = bar.add_task("re-encrypting", total=keys.count_stale(keyring))
            report = keys.rotate(keyring, batch_size=batch_size, progress=lambda n: bar.advance(task, n))
    else:
        report = keys.rotate(keyring, dry_run=dry_run, batch_size=batch_size)
    verb = "Would re-encrypt" if dry_run else "Re-encrypted"
    if as_json:
        output.json({**report.to_dict(), "dryRun": dry_run})
    else:
        output.success(f"{verb} {report.rewritten} secret(s) under key {report.key_id}")
    for message in report.failures:
        output.error(message)
    if report.failed:
        raise DecryptionFailed(f"{report.failed} secret(s) could not be decrypted with any configured key")
