"""The 405 table (gateway/methods.py), read from the same descriptor set Envoy loads."""

from __future__ import annotations

import re

import pytest

from gateway.methods import path_methods, template_regex
from scripts.gen_protos import DESCRIPTOR
from server.rpc.services import SERVICES


def table() -> dict[str, str]:
    services = [service.full_name for service in SERVICES]
    return {item.template: item.allow for item in path_methods(DESCRIPTOR.read_bytes(), services)}


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("/customers/{customer_id}", "/customers/abc", True),
        ("/customers/{customer_id}", "/customers/abc/x", False),
        ("/customers:watch", "/customers:watch", True),
        ("/customers:watch", "/customersXwatch", False),
        ("/files/{name=**}", "/files/a/b/c", True),
        ("/a/*/b", "/a/x/b", True),
    ],
)
def test_a_path_template_becomes_the_regex_the_transcoder_would_match(
    template: str, path: str, matches: bool
) -> None:
    assert bool(re.fullmatch(template_regex(template), path)) is matches


def test_every_rest_path_lists_exactly_its_declared_methods() -> None:
    found = table()
    assert found["/customers"] == "GET, POST"
    assert found["/auth/signing"] == "GET, PUT"
    assert found["/webhooks/{id}"] == "GET, DELETE"
    assert found["/customers/{customer_id}/activate"] == "PATCH"


def test_literal_paths_come_before_templates_that_also_match_them() -> None:
    order = list(table())
    assert order.index("/kyc/callbacks") < order.index("/kyc/{session_id}")


def test_a_wider_template_lets_the_narrower_ones_methods_through() -> None:
    services = [service.full_name for service in SERVICES]
    by_template = {p.template: p for p in path_methods(DESCRIPTOR.read_bytes(), services)}
    assert by_template["/kyc/{session_id}"].also_passes == ("POST",)
    assert by_template["/kyc/{session_id}"].allow == "GET"
    assert by_template["/customers/{customer_id}"].also_passes == ()
