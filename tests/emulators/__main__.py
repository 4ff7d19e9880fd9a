"""Run the provider emulators by hand (the README's tour): `python -m tests.emulators [--port N]`.

Prints `export <PROVIDER>_CLIENT_ID=... <PROVIDER>_AUTH_URL=...` lines for every
provider on stdout, so `. ./emulators.env` points nexusctl at them, then serves
until Ctrl-C or SIGTERM. The simulated user consents at once. Run it from the
repository root with the project's virtualenv (aiohttp is a dependency).

Besides the OAuth clients it prints what the other providers need:
GOOGLE_ADS_DEVELOPER_TOKEN and DISCORD_BOT_TOKEN (nexusctl's own variables),
SENDGRID_API_KEY (for `nexusctl integrations add SENDGRID --api-key-file -`),
WOOCOMMERCE_STORE_URL (`integrations connect WOOCOMMERCE --store-url`) and
SHOPIFY_SHOP (`--shop`). Every emulator starts with a few records of each kind
it lists (tests.emulators.seed), so a sync reads something; `--empty` leaves
them empty, as the test fixtures do. Every app registers the daemon's callback
URLs (`--public-url`, default `$PUBLIC_URL` or `http://localhost:$PORT`): an
authorize request naming another redirect URI is refused, as providers do.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading

from .seed import seed
from .server import Emulators

SHOPIFY_SHOP = "demo-shop.myshopify.com"  # any *.myshopify.com works: the emulator serves every shop


def tour_env(emulators: Emulators) -> dict[str, str]:
    """Every variable a tour of each provider needs: the OAuth clients, and the keys, tokens and URLs
    of the providers that connect otherwise (SendGrid, WooCommerce) or need an application token."""
    return {
        **emulators.env(),
        "GOOGLE_ADS_DEVELOPER_TOKEN": emulators["GOOGLE_ADS"].developer_token,
        "DISCORD_BOT_TOKEN": emulators["DISCORD"].bot_token,
        "SENDGRID_API_KEY": emulators.sendgrid_key(),
        "WOOCOMMERCE_STORE_URL": emulators.woocommerce_store_url,
        "SHOPIFY_SHOP": SHOPIFY_SHOP,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--empty", action="store_true", help="no records: every list is empty")
    parser.add_argument(
        "--public-url",
        action="append",
        default=None,
        metavar="URL",
        help="the daemon's PUBLIC_URL whose callbacks every app registers (repeatable; "
        "default: $PUBLIC_URL, else the daemon's default http://localhost:$PORT)",
    )
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Emulators(args.host, args.port) as emulators:
        default = os.environ.get("PUBLIC_URL") or f"http://localhost:{os.environ.get('PORT') or 3008}"
        for public_url in args.public_url or [default]:
            emulators.register_callback_base(public_url)
        if not args.empty:
            seed(emulators)
        for name, value in sorted(tour_env(emulators).items()):
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        print(f"provider emulators on {emulators.base_url} (Ctrl-C stops)", file=sys.stderr)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
