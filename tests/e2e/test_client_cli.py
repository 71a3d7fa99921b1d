"""The partner CLI (`python -m client`) run as a partner runs it, against the real Envoy:
keygen, register-key, signed calls; settings from the environment."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from client.signing import load_private_key
from tests.e2e.conftest import Stack
from tests.helpers.processes import ROOT
from tests.helpers.wallets import caip10, new_wallet


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def status(self) -> int:
        """The HTTP status the CLI printed on its first line."""
        first = self.stdout.splitlines()[0]
        assert first.startswith("HTTP "), self.stdout
        return int(first.removeprefix("HTTP "))

    @property
    def body(self) -> Any:
        return json.loads(self.stdout.split("\n", 1)[1])


def cli(*args: str, env: dict[str, str]) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "client", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def partner_env(stack: Stack, key_file: pathlib.Path) -> dict[str, str]:
    made = stack.new_partner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTOMERS_")}
    env.update(
        CUSTOMERS_BASE_URL=stack.base_url,
        CUSTOMERS_API_KEY=made.api_key,
        CUSTOMERS_API_SECRET=made.api_secret,
        CUSTOMERS_SIGNING_KEY=str(key_file),
    )
    return env


def test_keygen_register_and_signed_calls_onboard_a_customer(
    stack: Stack, tmp_path: pathlib.Path
) -> None:
    key_file = tmp_path / "key.pem"
    env = partner_env(stack, key_file)

    made = cli("keygen", env=env)
    assert made.code == 0, made.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_private_key(key_file.read_bytes())
    assert key.key_id in made.stderr
    public_key = made.stdout.strip()

    registered = cli("register-key", env=env)
    assert (registered.code, registered.status) == (0, 201), registered.stdout
    assert registered.body["keyId"] == key.key_id
    again = cli("register-key", env=env)
    assert (again.code, again.status) == (0, 200), again.stdout

    body = json.dumps({"chainId": caip10(new_wallet()), "externalId": "cli-1"})
    created = cli("call", "POST", "/customers", "--json", body, env=env)
    assert (created.code, created.status) == (0, 201), created.stdout + created.stderr
    listed = cli("call", "get", "/customers?pageSize=5", env=env)
    assert listed.status == 200, listed.stdout
    assert [c["id"] for c in listed.body["customers"]] == [created.body["id"]]
    keys = cli("call", "GET", "/auth/signing", env=env)
    assert [k["keyId"] for k in keys.body["keys"]] == [key.key_id]
    assert public_key  # what a partner would paste into PUT /auth/signing by hand


def test_a_second_key_is_registered_signed_by_the_first(
    stack: Stack, tmp_path: pathlib.Path
) -> None:
    first, second = tmp_path / "first.pem", tmp_path / "second.pem"
    env = partner_env(stack, first)
    assert cli("keygen", env=env).code == 0
    assert cli("register-key", env=env).status == 201
    assert cli("keygen", "--algorithm", "ed25519", "--out", str(second), env=env).code == 0

    unsigned_by_a_live_key = cli("register-key", "--key", str(second), env=env)
    assert (unsigned_by_a_live_key.code, unsigned_by_a_live_key.status) == (1, 401)
    assert unsigned_by_a_live_key.body["details"][0]["reason"] == "UNKNOWN_KEY"
    rotated = cli("register-key", "--key", str(second), "--signed-by", str(first), env=env)
    assert rotated.status == 201, rotated.stdout
    assert rotated.body["algorithm"] == "ed25519"
    assert cli("call", "GET", "/customers", "--key", str(second), env=env).status == 200
