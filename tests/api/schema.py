"""The API's OpenAPI schema, generated in-process, and the list endpoints read from it."""

from __future__ import annotations

import re
from functools import cache

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator


def generate() -> tuple[dict, list[str], list[str]]:
    """The schema and the warnings and errors drf-spectacular emitted while making it."""
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    warnings, errors = list(GENERATOR_STATS._warn_cache), list(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    return schema, warnings, errors


@cache
def _schema() -> dict:
    return generate()[0]


def _ok_schema(operation: dict) -> dict:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    return next(iter(content.values()), {}).get("schema", {})


def list_operations() -> set[str]:
    """Paths whose GET answers a list: a paginated page, or a bare array."""
    out = set()
    for path, operations in _schema()["paths"].items():
        schema = _ok_schema(operations.get("get", {}))
        if schema.get("type") == "array" or "/Paginated" in schema.get("$ref", ""):
            out.add(path)
    return out


def collection_gets() -> set[str]:
    """Paths with a GET whose last segment is not a path parameter (``/api/surveys/``, not
    ``/api/surveys/{id}/``)."""
    return {
        path
        for path, operations in _schema()["paths"].items()
        if "get" in operations and not re.search(r"\{[^}/]+\}/?$", path)
    }
