"""Signed contract fuzzing: schemathesis drives the live gateway (real server and Envoy)
from gen/openapi.json with every request signed as a partner (tests/helpers/fuzz_hooks.py).

Every check runs (no 5xx, only documented statuses, bodies and content types matching their
schemas, negative data rejected, schema-valid data accepted, 405 with `Allow` for undeclared
methods, ...), in positive and negative mode, over the examples, coverage and fuzzing
phases, with deterministic generation so a failure reproduces. No baseline: any failure
fails the test. Three operations are left out (see the exclusion below); five do without
`positive_data_acceptance` alone, where validity rests on what no schema can state
(fuzz-schemathesis.toml, docs/DECISIONS.md "Contract fuzzing").
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from client.signing import private_key_pem
from scripts.openapi import OUTPUT
from tests.e2e.conftest import Stack
from tests.helpers.rest import RestPartner

pytestmark = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)

MAX_EXAMPLES = 5
ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = pathlib.Path(__file__).with_name("fuzz-schemathesis.toml")


@pytest.mark.timeout(420)
def test_the_gateway_keeps_its_contract_under_signed_fuzzing(
    partner: RestPartner, tmp_path: pathlib.Path, stack: Stack
) -> None:
    customer = partner.active_customer()
    account = partner.call(
        "POST",
        f"/customers/{customer['id']}/accounts",
        json={"type": "card_account", "currencies": ["EUR"]},
    )
    assert account.status_code == 201, account.text
    card = partner.call("POST", f"/accounts/{account.json()['id']}/cards", json={"type": "virtual"})
    assert card.status_code == 201, card.text
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(private_key_pem(partner.key))

    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.helpers.fuzz_hooks",
        "PYTHONPATH": str(ROOT),
        "FUZZ_TOKEN": partner.token,
        "FUZZ_KEY_FILE": str(key_file),
        "FUZZ_CUSTOMER_ID": customer["id"],
        "FUZZ_ACCOUNT_ID": account.json()["id"],
        "FUZZ_CARD_ID": card.json()["id"],
    }
    run = subprocess.run(
        [
            str(pathlib.Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(CONFIG),
            "run",
            str(OUTPUT),
            "--url",
            stack.base_url,
            # No --checks: every check runs by default, and the config file can then turn
            # one off for an operation (a CLI --checks would override it).
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            # Deterministic generation (schemathesis then ignores any seed): the same cases
            # every run, so a failure reproduces; --max-time bounds the run on a slow machine.
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--max-time",
            "90",
            # Left out: the SSE stream never ends; rotating the credentials or deleting the
            # signing key (schemathesis learns its id from GET /auth/signing) would lock the
            # fuzzer out for the rest of the run. tests/integration covers those three.
            "--exclude-path-regex",
            "^/(customers:watch|auth/credentials|auth/signing/.*)$",
            "--continue-on-failure",
            "--no-color",
            "--output-truncate",
            "false",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path / "reports"),
            *os.environ.get("FUZZ_EXTRA", "").split(),
        ],
        env=env,
        cwd=tmp_path,  # schemathesis keeps a crash cache in .schemathesis/ of its cwd
        capture_output=True,
        text=True,
        check=False,
        timeout=400,
    )
    # FUZZ_OUT keeps the whole report, FUZZ_EXTRA adds CLI options (both for debugging).
    pathlib.Path(os.environ.get("FUZZ_OUT", tmp_path / "out.txt")).write_text(run.stdout)
    print("\n".join(line for line in run.stdout.splitlines() if re.search(r"\d+ generated", line)))
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-3000:]


@pytest.mark.parametrize(
    "header",
    [("w1lg'|o7j", "x"), ("d#aa", "v"), ("x-note", "caf\u00e9"), ("te", ",`{")],
)
def test_headers_grpc_cannot_carry_are_dropped_not_a_500(
    partner: RestPartner, header: tuple[str, str]
) -> None:
    # Found by the fuzz: grpc-core refused the whole call over one such header (500).
    name, value = header
    answer = partner.call("GET", "/customers", headers={name: value.encode("utf-8")})
    assert answer.status_code == 200, answer.text
