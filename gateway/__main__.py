"""`python -m gateway render|validate`: print the default config, or have Envoy check it.

`make lint` runs `validate`, so a config Envoy would refuse fails CI without starting it.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile

from gateway.process import envoy_binary

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DESCRIPTOR = ROOT / "gen" / "customers.pb"


def default_config() -> str:
    """The config for the documented default ports (SPEC section 10) and one local server,
    rendered as the server renders it (services, public paths and all, from the proto)."""
    from server.edge import render_gateway  # the server knows its services and policies

    return render_gateway(
        http_port=8080,
        admin_port=9901,
        backends=[str(ROOT / "var" / "run" / "worker-0.sock")],
    )


def validate(config_text: str) -> int:
    """Runs `envoy --mode validate` on the text; Envoy's exit code."""
    with tempfile.TemporaryDirectory(prefix="customers-envoy-") as scratch:
        path = pathlib.Path(scratch) / "envoy.json"
        path.write_text(config_text, encoding="utf-8")
        done = subprocess.run(
            [str(envoy_binary()), "--mode", "validate", "-c", str(path), "--log-level", "warning"],
            check=False,
        )
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("command", choices=("render", "validate"))
    args = parser.parse_args(argv)
    config = default_config()
    if args.command == "render":
        sys.stdout.write(config + "\n")
        return 0
    return validate(config)


if __name__ == "__main__":
    sys.exit(main())
