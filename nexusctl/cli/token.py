"""`nexusctl token mint`: a bearer token for local use and scripts."""

import datetime as dt
from typing import Annotated

import typer

from nexusctl.cli.context import out, state
from nexusctl.cli.options import Json
from nexusctl.core.ids import parse_uuid
from nexusctl.errors import UsageProblem

app = typer.Typer(
    help="Bearer tokens (JWT) for the daemon's API.\n\n"
    "Example:  nexusctl token mint --role admin --subject ops --ttl 600",
    no_args_is_help=True,
)

ROLES = ("admin", "service")


@app.command("mint")
def mint_cmd(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", "-u", help="The user (UUID) the token acts as.")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="admin or service; repeatable.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Subject of a service token without --user.")] = None,
    ttl: Annotated[
        int, typer.Option("--ttl", min=1, max=31 * 24 * 3600, help="Lifetime in seconds (at most JWT_MAX_AGE).")
    ] = 3600,
    as_json: Json = False,
) -> None:
    """Print a JWT signed with JWT_SECRET (or the development secret); --json adds its subject, roles, expiry.

    The token is the output (stdout only): use it as `Authorization: Bearer $TOKEN`.

    Example:  TOKEN="$(nexusctl token mint --user 6f1c2a9e-0d4b-4f7e-9a51-2b8c3d4e5f60 --ttl 600)"
    """
    # start-up: only this command needs it
    from nexusctl.daemon.auth import mint

    roles = sorted(set(role or []))
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise UsageProblem(f"unknown role(s) {', '.join(unknown)}; use admin or service", field="role")
    if user is not None:
        sub = str(parse_uuid(user, "user"))
    elif roles and subject:
        sub = subject
    else:
        raise UsageProblem("give --user ID, or --role with --subject NAME for a service token", field="user")
    settings = state(ctx).settings
    if ttl > settings.jwt_max_age:  # the daemon would refuse it: say so now, not at the first request
        raise UsageProblem(
            f"--ttl {ttl} exceeds JWT_MAX_AGE ({int(settings.jwt_max_age)} s), which the daemon enforces", field="ttl"
        )
    token = mint(settings, subject=sub, roles=roles, ttl_seconds=ttl)
    if not as_json:
        out(ctx).value(token)
        return

    # start-up: only this command signs a token
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})  # our own token: read back its expiry
    expires = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc).isoformat().replace("+00:00", "Z")
    out(ctx).json({"token": token, "subject": sub, "roles": roles, "expiresAt": expires})
