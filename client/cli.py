"""Partner CLI: make a signing key, register it, and make signed REST calls.

curl cannot sign (RFC 9421 needs a signature over the request), so this is the service's
command-line client:

    python -m client keygen [--algorithm ecdsa-p384-sha384|ed25519] [--out key.pem]
    python -m client register-key [--signed-by old.pem]
    python -m client call METHOD PATH [--json BODY | --json @file.json] [-H 'Name: value']

Connection settings come from options or, by default, from the environment:
CUSTOMERS_BASE_URL (default http://localhost:8080), CUSTOMERS_API_KEY,
CUSTOMERS_API_SECRET and CUSTOMERS_SIGNING_KEY (the private key PEM file).

`call` and `register-key` get a fresh token on every run and print the HTTP status on the
first line, then the JSON body. Exit status: 0 for a 1xx-3xx answer, 1 for 4xx/5xx, 2 for
a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import httpx

from client.idempotency import MODIFYING_HTTP_METHODS, new_key
from client.signing import (
    ECDSA_P384_SHA384,
    ED25519,
    PrivateSigningKey,
    SigningAuth,
    generate_key,
    load_private_key,
    private_key_pem,
    public_key_b64,
)

DEFAULT_BASE_URL: Final = "http://localhost:8080"
DEFAULT_KEY_FILE: Final = "signing-key.pem"
TIMEOUT_SECONDS: Final = 30.0


class UsageError(Exception):
    """Bad or missing input: reported on stderr with exit status 2."""


@dataclass(frozen=True)
class Connection:
    base_url: str
    api_key: str
    api_secret: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits with status 2
    return status


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Sign and send requests to the customer onboarding API.",
        epilog="Defaults come from CUSTOMERS_BASE_URL, CUSTOMERS_API_KEY, "
        "CUSTOMERS_API_SECRET and CUSTOMERS_SIGNING_KEY.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser(
        "keygen", help="create a private signing key; print its public key for PUT /auth/signing"
    )
    keygen.add_argument(
        "--algorithm", choices=[ECDSA_P384_SHA384, ED25519], default=ECDSA_P384_SHA384
    )
    keygen.add_argument(
        "--out",
        type=pathlib.Path,
        default=pathlib.Path(env.get("CUSTOMERS_SIGNING_KEY") or DEFAULT_KEY_FILE),
        help=f"private key PEM to write (default: $CUSTOMERS_SIGNING_KEY or {DEFAULT_KEY_FILE})",
    )
    keygen.add_argument("--force", action="store_true", help="overwrite an existing file")
    keygen.set_defaults(run=_keygen)

    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--base-url", default=env.get("CUSTOMERS_BASE_URL") or DEFAULT_BASE_URL)
    connection.add_argument("--api-key", default=env.get("CUSTOMERS_API_KEY"))
    connection.add_argument("--api-secret", default=env.get("CUSTOMERS_API_SECRET"))
    connection.add_argument(
        "--key",
        type=pathlib.Path,
        default=env.get("CUSTOMERS_SIGNING_KEY"),
        help="private signing key PEM (default: $CUSTOMERS_SIGNING_KEY)",
    )

    register = commands.add_parser(
        "register-key",
        parents=[connection],
        help="register --key's public key (PUT /auth/signing)",
        description="Registers the public half of --key. A partner's first key needs only "
        "the token; later ones must be signed by a live key: pass it as --signed-by.",
    )
    register.add_argument(
        "--signed-by",
        type=pathlib.Path,
        help="a live key to sign with (default: --key itself, which works for the first key "
        "and for registering a live key again)",
    )
    register.set_defaults(run=_register_key)

    call = commands.add_parser(
        "call", parents=[connection], help="make one signed request and print the answer"
    )
    call.add_argument("method", type=str.upper, metavar="METHOD")
    call.add_argument("path", metavar="PATH", help="e.g. /customers or '/customers?pageSize=5'")
    call.add_argument("--json", dest="body", metavar="BODY", help="JSON body, or @file")
    call.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra header (repeatable), e.g. an Idempotency-Key to retry with",
    )
    call.set_defaults(run=_call)

    stream = commands.add_parser(
        "stream",
        parents=[connection],
        help="follow a server-sent event stream (e.g. '/customers:watch?after=0'); "
        "prints one JSON object per line until interrupted",
    )
    stream.add_argument("path", metavar="PATH")
    stream.set_defaults(run=_stream)
    return parser


def _keygen(args: argparse.Namespace) -> int:
    key = generate_key(args.algorithm)
    out: pathlib.Path = args.out
    _write_private(out, private_key_pem(key), overwrite=args.force)
    print(public_key_b64(key))
    print(f"keyId {key.key_id} ({key.algorithm}); private key written to {out}", file=sys.stderr)
    return 0


def _write_private(path: pathlib.Path, pem: bytes, *, overwrite: bool) -> None:
    """Owner-only permissions from the start; never replace a key unless asked to."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} exists; pass --force to replace it") from None
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)


def _register_key(args: argparse.Namespace) -> int:
    connection = _connection(args)
    key = _load_key(args.key, "--key")
    signer = _load_key(args.signed_by, "--signed-by") if args.signed_by else key
    body = json.dumps({"publicKey": public_key_b64(key)}).encode()
    return _signed_request(connection, signer, "PUT", "/auth/signing", body, {})


def _call(args: argparse.Namespace) -> int:
    connection = _connection(args)
    key = _load_key(args.key, "--key")
    body = _body(args.body)
    headers = dict(_header(line) for line in args.header)
    return _signed_request(connection, key, args.method, args.path, body, headers)


def _stream(args: argparse.Namespace) -> int:
    connection = _connection(args)
    key = _load_key(args.key, "--key")
    timeout = httpx.Timeout(TIMEOUT_SECONDS, read=None)  # heartbeats come every 15 s
    with httpx.Client(base_url=connection.base_url, timeout=timeout) as http:
        token = http.post(
            "/auth/token", json={"apiKey": connection.api_key, "apiSecret": connection.api_secret}
        )
        if token.status_code != 200:
            return _print_answer(token)
        auth = SigningAuth(key, token=str(token.json()["token"]))
        with http.stream("GET", args.path, auth=auth) as answer:
            if answer.status_code != 200:
                answer.read()
                return _print_answer(answer)
            try:
                for line in answer.iter_lines():
                    if line.startswith("data:"):
                        print(line[len("data:") :].strip(), flush=True)
            except KeyboardInterrupt:
                return 0
    return 0


def _connection(args: argparse.Namespace) -> Connection:
    missing = [
        f"--{name.replace('_', '-')} (or CUSTOMERS_{name.upper()})"
        for name in ("api_key", "api_secret")
        if not getattr(args, name)
    ]
    if missing:
        raise UsageError(f"missing {' and '.join(missing)}")
    return Connection(args.base_url, args.api_key, args.api_secret)


def _load_key(path: pathlib.Path | None, option: str) -> PrivateSigningKey:
    if path is None:
        raise UsageError(f"missing {option} (or CUSTOMERS_SIGNING_KEY): the private key PEM")
    try:
        return load_private_key(pathlib.Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path} is not a usable signing key: {exc}") from None


def _body(value: str | None) -> bytes | None:
    """The bytes to send, exactly as given (the Content-Digest is over these), once they
    are known to be JSON."""
    if value is None:
        return None
    if value.startswith("@"):
        try:
            raw = pathlib.Path(value[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {value[1:]}: {exc.strerror}") from None
    else:
        raw = value.encode("utf-8")
    try:
        json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"--json is not valid JSON: {exc}") from None
    return raw


def _header(line: str) -> tuple[str, str]:
    name, separator, value = line.partition(":")
    if not separator or not name.strip():
        raise UsageError(f"header {line!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _signed_request(
    connection: Connection,
    key: PrivateSigningKey,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> int:
    """Token, then the request signed with `key`; prints the answer, returns the exit status."""
    with httpx.Client(base_url=connection.base_url, timeout=TIMEOUT_SECONDS) as http:
        try:
            token = http.post(
                "/auth/token",
                json={"apiKey": connection.api_key, "apiSecret": connection.api_secret},
            )
            if token.status_code != 200:
                print("POST /auth/token failed:", file=sys.stderr)
                return _print_answer(token)
            if method in MODIFYING_HTTP_METHODS and not any(
                name.lower() == "idempotency-key" for name in headers
            ):
                headers["Idempotency-Key"] = new_key()
            if body is not None:
                headers.setdefault("Content-Type", "application/json")
            answer = http.request(
                method,
                path,
                content=body,
                headers=headers,
                auth=SigningAuth(key, token=str(token.json()["token"])),
            )
        except httpx.HTTPError as exc:
            print(f"request to {connection.base_url} failed: {exc}", file=sys.stderr)
            return 1
        return _print_answer(answer)


def _print_answer(answer: httpx.Response) -> int:
    print(f"HTTP {answer.status_code}")
    if answer.content:
        try:
            print(json.dumps(answer.json(), indent=2))
        except ValueError:
            print(answer.text)
    return 0 if answer.status_code < 400 else 1
