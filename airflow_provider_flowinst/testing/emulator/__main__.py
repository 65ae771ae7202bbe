"""``python -m airflow_provider_flowinst.testing.emulator --port 8080``: every platform on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from airflow_provider_flowinst.testing.emulator.server import serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--time-scale", type=float, default=1.0, help="wall seconds per emulated second")
    parser.add_argument("--token-lifetime", type=int, default=7200, help="seconds a token lives")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.host, args.port, time_scale=args.time_scale, token_lifetime=args.token_lifetime))


if __name__ == "__main__":
    main()
