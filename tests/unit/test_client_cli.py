"""The partner CLI's local behaviour: key files, and usage errors before any request."""

from __future__ import annotations

import pathlib
import stat

import pytest

from client.cli import main
from client.signing import ED25519, load_private_key, public_key_b64


@pytest.fixture(autouse=True)
def _no_customers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BASE_URL", "API_KEY", "API_SECRET", "SIGNING_KEY"):
        monkeypatch.delenv(f"CUSTOMERS_{name}", raising=False)


def test_keygen_writes_an_owner_only_key_and_prints_its_public_key(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "key.pem"
    assert main(["keygen", "--algorithm", ED25519, "--out", str(out)]) == 0
    key = load_private_key(out.read_bytes())
    printed = capsys.readouterr()
    assert printed.out.strip() == public_key_b64(key)
    assert key.key_id in printed.err and key.algorithm == ED25519
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_keygen_never_replaces_a_key_unless_forced(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "key.pem"
    monkeypatch.setenv("CUSTOMERS_SIGNING_KEY", str(out))  # the default --out
    assert main(["keygen"]) == 0
    original = out.read_bytes()
    with pytest.raises(SystemExit) as exited:
        main(["keygen"])
    assert exited.value.code == 2 and "--force" in capsys.readouterr().err
    assert out.read_bytes() == original
    assert main(["keygen", "--force"]) == 0
    assert out.read_bytes() != original


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["call", "GET", "/customers", "--api-secret", "s", "--key", "k.pem"], "CUSTOMERS_API_KEY"),
        (["call", "GET", "/customers", "--api-key", "k", "--key", "k.pem"], "CUSTOMERS_API_SECRET"),
        (["call", "GET", "/customers", "--api-key", "k", "--api-secret", "s"], "--key"),
        (["register-key", "--api-key", "k", "--api-secret", "s", "--key", "nope.pem"], "nope.pem"),
    ],
    ids=["no api key", "no api secret", "no signing key", "unreadable key"],
)
def test_missing_settings_exit_2_naming_them_before_any_request(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--base-url", "http://127.0.0.1:9"])  # nothing listens there
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_a_body_that_is_not_json_or_a_header_without_colon_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    common = ["--api-key", "k", "--api-secret", "s", "--key", str(key)]
    common += ["--base-url", "http://127.0.0.1:9"]
    for extra, says in [
        (["--json", "{nope"], "not valid JSON"),
        (["--json", f"@{tmp_path / 'missing.json'}"], "missing.json"),
        (["-H", "no colon here"], "Name: value"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["call", "POST", "/customers", *extra, *common])
        assert exited.value.code == 2
        assert says in capsys.readouterr().err


def test_an_unreachable_service_exits_1(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key.pem"
    assert main(["keygen", "--out", str(key)]) == 0
    argv = ["call", "GET", "/customers", "--api-key", "k", "--api-secret", "s", "--key", str(key)]
    assert main([*argv, "--base-url", "http://127.0.0.1:9"]) == 1
    assert "failed" in capsys.readouterr().err
