"""Validate Paxos REST bodies against the published OpenAPI schemas (kept as data in
spec/paxos-v2-schemas.json, a verbatim subset of `components/schemas` of
paxosglobal/docs-mintlify api-reference/openapi.json).

Stricter than the spec in one way: an object may carry only the properties its schema lists, so
the simulator cannot invent fields the venue does not document.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema

_SPEC = json.loads((Path(__file__).parent / "spec" / "paxos-v2-schemas.json").read_text())
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)\Z")

_formats = jsonschema.FormatChecker()


@_formats.checks("date-time")
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_RFC3339.match(value))


@_formats.checks("uint64")
def _uint64(value: object) -> bool:
    # OpenAPI `format: uint64` on a string: the decimal digits of an unsigned 64-bit integer
    return not isinstance(value, str) or (value.isdigit() and int(value) < 2**64)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Every object schema with `properties` closed to those properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


_STRICT = _strict(_SPEC)


def validate(name: str, body: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `body` is a valid `name` (e.g. "Order")."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _STRICT["components"]}
    # OpenAPI 3.0 schemas use draft-4 keywords (`exclusiveMaximum: true`)
    jsonschema.Draft4Validator(schema, format_checker=_formats).validate(body)


_ROUTES = (
    ("POST", re.compile(r"/v2/profiles/[^/]+/orders\Z"), "Order"),
    ("GET", re.compile(r"/v2/profiles/[^/]+/orders/[^/]+\Z"), "Order"),
    ("DELETE", re.compile(r"/v2/profiles/[^/]+/orders/[^/]+\Z"), "CancelOrderResponse"),
    ("GET", re.compile(r"/v2/orders\Z"), "ListOrdersResponse"),
    ("GET", re.compile(r"/v2/executions\Z"), "ListExecutionsResponse"),
    ("GET", re.compile(r"/v2/markets\Z"), "ListMarketsResponse"),
    ("GET", re.compile(r"/v2/markets/[^/]+/order-book\Z"), "GetOrderBookResponse"),
)


def schema_for(method: str, path: str, status: int) -> str | None:
    if not path.startswith("/v2/"):
        return None
    if status >= 400:
        return "Problem"
    for m, pattern, name in _ROUTES:
        if m == method and pattern.match(path):
            return name
    return None


checked: list[str] = []  # schema names validated, for the test that says every route was seen


async def check_response(response: httpx.Response) -> None:
    """An httpx response hook: every /v2 body must validate against its published schema."""
    await response.aread()
    name = schema_for(response.request.method, response.request.url.path, response.status_code)
    if name is None:
        return
    validate(name, response.json())
    checked.append(name)
