"""A partner speaking REST/JSON to the gateway, as an integrator would."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from client.idempotency import MODIFYING_HTTP_METHODS, new_key
from tests.helpers.partners import PartnerCredentials
from tests.helpers.wallets import caip10, new_wallet, sign_challenge


@dataclass
class RestPartner:
    http: httpx.Client
    credentials: PartnerCredentials
    token: str = field(default="")

    def __post_init__(self) -> None:
        if not self.token:
            answer = self.http.post(
                "/auth/token",
                json={"apiKey": self.credentials.api_key, "apiSecret": self.credentials.api_secret},
            )
            assert answer.status_code == 200, answer.text
            self.token = answer.json()["token"]

    def call(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """A partner's request; modifying ones get a fresh Idempotency-Key unless the
        caller passes one (or `idempotent=False` to send none)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if idempotent and method.upper() in MODIFYING_HTTP_METHODS:
            headers["Idempotency-Key"] = new_key()
        headers.update(kwargs.pop("headers", {}))
        return self.http.request(method, path, headers=headers, **kwargs)

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
