"""OpenAPI 3.1 for the REST API, generated from the descriptor set the gateway loads.

No maintained generator does 3.1 from `google.api.http` offline; this one reads the same
FileDescriptorSet Envoy's transcoder reads (gen/customers.pb), so paths, json names and
bodies are the gateway's, and takes statuses and error reasons from the proto's
`(customers.v1.responses)` option and the server's own error catalogue. `make gen` writes
gen/openapi.json; `make gen-check` fails when the committed copy is stale.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from scripts.openapi import guide
from scripts.openapi.descriptors import load
from scripts.openapi.operations import Operations
from scripts.openapi.reasons import catalogue
from scripts.openapi.schemas import Schemas
from server.rpc.services import SERVICE_NAMES

Json = dict[str, Any]

PACKAGE = "customers.v1"
ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
DESCRIPTOR = ROOT / "gen" / "customers.pb"
OUTPUT = ROOT / "gen" / "openapi.json"
# Error payloads every error body may carry, described even where no operation names them.
_ERROR_MESSAGES = ("google.rpc.Status", "google.rpc.ErrorInfo", "google.rpc.BadRequest")


def build(descriptor_set: bytes) -> Json:
    """The OpenAPI document as a dict."""
    index = load(descriptor_set)
    schemas = Schemas(index, PACKAGE)
    for name in _ERROR_MESSAGES:
        schemas.ref(name, output=True)
    operations = Operations(index, schemas, catalogue(), PACKAGE)
    paths: Json = {}
    # The services the gateway transcodes (server/rpc/services.py), in the proto's order.
    for service in SERVICE_NAMES:
        for method in index.methods_of(service):
            operations.add(paths, method)
    tags = [
        {"name": name.removeprefix(PACKAGE + "."), "description": index.services[name].text}
        for name in SERVICE_NAMES
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Customer onboarding API",
            "version": PACKAGE.rsplit(".", 1)[-1],
            "description": guide.DESCRIPTION,
        },
        "servers": [
            {"url": "/", "description": "This gateway"},
            {"url": "/v1", "description": "The same API under the versioned prefix"},
        ],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "parameters": guide.PARAMETERS,
            "examples": operations.examples(),
            "headers": guide.HEADERS,
            "securitySchemes": guide.SECURITY_SCHEMES,
        },
    }


def render(document: Json) -> str:
    """Stable text: the committed file diffs cleanly when the API changes."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(descriptor: pathlib.Path = DESCRIPTOR, output: pathlib.Path = OUTPUT) -> None:
    output.write_text(render(build(descriptor.read_bytes())), encoding="utf-8")
