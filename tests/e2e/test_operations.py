"""What operators touch: the CLI, health, reflection, and token lifetimes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.adapters.tokens import JwtTokens
from server.bootstrap import server_secret
from server.services.ports import TokenClaims
from server.store.engine import make_engine
from tests.e2e.conftest import Stack
from tests.helpers.processes import ROOT, server_env
from tests.helpers.rest import RestPartner


def test_partners_create_prints_credentials_once_as_json(stack: Stack, http: httpx.Client) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "server", "partners", "create", "Acme Wallet", "--json"],
        env=server_env(stack.database_url, 0),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    created = json.loads(printed)
    assert set(created) == {"partnerId", "apiKey", "apiSecret"}
    assert uuid.UUID(created["partnerId"]) and uuid.UUID(created["apiKey"])
    token = http.post(
        "/auth/token", json={"apiKey": created["apiKey"], "apiSecret": created["apiSecret"]}
    )
    assert token.status_code == 200


def test_migrate_is_a_no_op_on_an_up_to_date_database(stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=server_env(stack.database_url, 0),
        cwd=ROOT,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr


def test_health_and_reflection_answer_on_the_grpc_port(stack: Stack) -> None:
    with grpc.insecure_channel(stack.server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="customers.v1.CustomerService"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert {"customers.v1.CustomerService", "customers.v1.AccountService"} <= names


def _mint(stack: Stack, partner_id: str, expires_at: int) -> str:
    async def secret() -> str:
        engine = make_engine(stack.database_url)
        try:
            return await server_secret(engine, "token")
        finally:
            await engine.dispose()

    tokens = JwtTokens(asyncio.run(secret()))
    return tokens.encode(TokenClaims(uuid.UUID(partner_id), 1, expires_at))


def test_an_expired_token_answers_401_and_a_fresh_one_works(
    stack: Stack, http: httpx.Client, partner: RestPartner
) -> None:
    partner_id = partner.credentials.partner_id
    expired = _mint(stack, partner_id, int(time.time()) - 1)
    answer = partner.call("GET", "/customers", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401
    assert "expired" in answer.json()["message"]
    fresh = _mint(stack, partner_id, int(time.time()) + 60)
    ok = partner.call("GET", "/customers", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200
