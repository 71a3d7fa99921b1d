"""The TypeScript client (clients/typescript/) against the live gateway: its own end-to-end
script, run with Node through tsx, as a partner would run the quick start. `make test`
installs its packages first (`npm ci`)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest

from tests.e2e.conftest import Stack

CLIENT = pathlib.Path(__file__).resolve().parents[2] / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"


def _require_packages() -> None:
    if shutil.which("node") is None:
        pytest.fail("Node 20 is needed for the TypeScript client test")
    if not (BIN / "tsx").exists():
        pytest.fail("clients/typescript has no node_modules: run `make ts-client` (npm ci)")


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of the client's installed npm tools, run in its folder."""
    return subprocess.run(
        [str(BIN / name), *args],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_typescript_client_types_are_current_and_check(tmp_path: pathlib.Path) -> None:
    _require_packages()
    fresh = tmp_path / "schema.d.ts"
    generated = _tool("openapi-typescript", "../../gen/openapi.json", "-o", str(fresh))
    assert generated.returncode == 0, generated.stdout + generated.stderr
    committed = (CLIENT / "src" / "schema.d.ts").read_text()
    assert fresh.read_text() == committed, (
        "src/schema.d.ts is stale: cd clients/typescript && npm run gen"
    )
    run = _tool("tsc", "--noEmit", "-p", ".")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_the_typescript_client_onboards_a_customer(stack: Stack) -> None:
    _require_packages()
    partner = stack.new_partner()
    run = subprocess.run(
        [str(BIN / "tsx"), "test/e2e.ts"],
        cwd=CLIENT,
        env={
            **os.environ,
            "CUSTOMERS_URL": stack.base_url,
            "CUSTOMERS_API_KEY": partner.api_key,
            "CUSTOMERS_API_SECRET": partner.api_secret,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["status"] == "active"
