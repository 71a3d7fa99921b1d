"""A partner speaking REST/JSON to the gateway, as an integrator would."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from client.idempotency import MODIFYING_HTTP_METHODS, new_key
from client.signing import PrivateSigningKey, SigningAuth, generate_key, public_key_b64
from tests.helpers.partners import PartnerCredentials
from tests.helpers.wallets import caip10, new_wallet, sign_challenge


@dataclass
class RestPartner:
    """Gets a token, registers a signing key with the token alone (allowed for the first
    key), and from then on signs every request with it, as the partner SDK does."""

    http: httpx.Client
    credentials: PartnerCredentials
    algorithm: str = "ecdsa-p384-sha384"
    token: str = field(default="")
    key: PrivateSigningKey = field(init=False)

    def __post_init__(self) -> None:
        self.key = generate_key(self.algorithm)
        if not self.token:
            self.token = self.fresh_token()
        registered = self.http.put(
            "/auth/signing",
            json={"publicKey": public_key_b64(self.key)},
            headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": new_key()},
        )
        assert registered.status_code == 201, registered.text
        assert registered.json()["keyId"] == self.key.key_id

    def fresh_token(self) -> str:
        answer = self.http.post(
            "/auth/token",
            json={"apiKey": self.credentials.api_key, "apiSecret": self.credentials.api_secret},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        signed: bool = True,
        key: PrivateSigningKey | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A partner's signed request; modifying ones get a fresh Idempotency-Key unless the
        caller passes one (or `idempotent=False` to send none)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotent and method.upper() in MODIFYING_HTTP_METHODS:
            headers["Idempotency-Key"] = new_key()
        headers.update(kwargs.pop("headers", {}))
        auth = SigningAuth(key or self.key) if signed else None
        return self.http.request(method, path, headers=headers, auth=auth, **kwargs)

    def create_customer(
        self, chain_id: str | None = None, external_id: str | None = None
    ) -> httpx.Response:
        wallet_id = chain_id or caip10(new_wallet())
        return self.call(
            "POST",
            "/customers",
            json={"chainId": wallet_id, "externalId": external_id or wallet_id[-12:]},
        )

    def active_customer(self) -> dict[str, Any]:
        wallet = new_wallet()
        created = self.call(
            "POST", "/customers", json={"chainId": caip10(wallet), "externalId": wallet.address}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        signed = self.call(
            "POST",
            f"/customers/{body['id']}/challenge/sign",
            json={
                "signature": sign_challenge(wallet, body["challenge"]),
                "signer": body["chainId"],
                "challenge": body["challenge"],
            },
        )
        assert signed.status_code == 204, signed.text
        verified = self.call("PATCH", f"/simulator/customers/{body['id']}/verify")
        assert verified.status_code == 202, verified.text
        customer = self.call("GET", f"/customers/{body['id']}").json()
        assert customer["status"] == "active"
        return dict(customer)
