"""The OpenAPI schema is generated without a warning or an error (a warning means a part of the
schema that clients and the fuzzer read is wrong or guessed), and validates."""

from __future__ import annotations

from drf_spectacular.validation import validate_schema

from tests.api.schema import generate


def test_schema_generates_without_warnings_or_errors():
    schema, warnings, errors = generate()
    assert not errors, "\n".join(errors)
    assert not warnings, "\n".join(warnings)
    validate_schema(schema)


def test_every_operation_has_a_unique_operation_id():
    schema, _, _ = generate()
    ids = [
        op["operationId"]
        for operations in schema["paths"].values()
        for method, op in operations.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
