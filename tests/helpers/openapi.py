"""Checks a live gateway answer against the published OpenAPI document: its status is one
the operation documents, its body validates against that status's schema (with no
property the schema does not name), and an error's ErrorInfo reason is one listed there."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from scripts.openapi import OUTPUT

Json = dict[str, Any]


@functools.cache
def document() -> Json:
    return dict(json.loads(OUTPUT.read_text(encoding="utf-8")))


def check(verb: str, path: str, answer: httpx.Response) -> Json:
    """The documented response object the answer matched; fails the test if none did.
    `path` is the document's template ("/customers/{customerId}")."""
    operation = document()["paths"][path][verb.lower()]
    documented = operation["responses"].get(str(answer.status_code))
    assert documented is not None, (
        f"{verb} {path} answered {answer.status_code}, which the document does not list: "
        f"{answer.text[:300]}"
    )
    content = documented.get("content")
    if not content:
        assert answer.content == b"", answer.text
        return dict(documented)
    [(media, spec)] = content.items()
    assert answer.headers["content-type"].startswith(media), answer.headers
    if media == "application/json":
        validate(spec["schema"], answer.json())
        reasons = documented.get("x-error-reasons")
        if reasons is not None:
            assert reason_of(answer.json()) in reasons, (answer.json(), reasons)
    return dict(documented)


def validate(schema: Json, instance: Any) -> None:
    """JSON Schema 2020-12 validation; `#/components/...` refs resolve against the document."""
    rooted = {**schema, "components": document()["components"]}
    Draft202012Validator(rooted).validate(instance)
    resolved = _resolve(schema)
    if isinstance(instance, dict) and "properties" in resolved:
        extra = set(instance) - set(resolved["properties"])
        assert not extra, f"answer has properties the document does not name: {extra}"


def _resolve(schema: Json) -> Json:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = str(ref).rsplit("/", 1)[-1]
    return dict(document()["components"]["schemas"][name])


def reason_of(body: Json) -> str:
    for detail in body.get("details", []):
        if str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return str(detail["reason"])
    raise AssertionError(f"no ErrorInfo in {body}")
