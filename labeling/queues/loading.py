"""Load one queue item with its survey, frame and Web image in one SQL query.

The next-item and vote calls each load one item with its relations. Composing that query with
the ORM (select_related over four tables) cost ten times more CPU than the database spent
answering it, and these two calls are most of the site's traffic. This module writes the query
once per process and turns the row into model instances itself, applying the same value
converters the ORM applies (JSON, dates, booleans on SQLite), so the instances behave as if the
ORM had loaded them. Fields not listed are deferred: reading one costs a query, as with
``QuerySet.only()``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

from labeling.models import LabelItem, Survey, SurveyImage, WebImage

ITEM_FIELDS = (
    "id", "kind", "status", "x0", "y0", "x1", "y1", "context_box", "tile_crop", "context_crop",
    "score", "is_gold", "gold_answer", "gold_points", "votes_needed", "votes_count", "consensus",
    "consensus_points", "consensus_boxes", "consensus_reason", "retired_at", "survey", "image",
    "web_image",
)  # fmt: skip
SURVEY_FIELDS = (
    "id", "name", "gsd_cm", "altitude_m", "focal_length_mm", "pixel_pitch_um", "animal_length_m",
    "archived", "team",
)  # fmt: skip
IMAGE_FIELDS = ("id", "original_name")
WEB_IMAGE_FIELDS = (
    "id", "file", "width", "height", "original_name", "source_page", "licence", "author",
)  # fmt: skip

_PARTS = (
    ("li", LabelItem, ITEM_FIELDS, None),
    ("s", Survey, SURVEY_FIELDS, "survey"),
    ("i", SurveyImage, IMAGE_FIELDS, "image"),
    ("w", WebImage, WEB_IMAGE_FIELDS, "web_image"),
)


@dataclass(frozen=True)
class _Part:
    alias: str
    model: type[Model]
    fields: tuple
    relation: str | None
    converters: tuple


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(name: str, make) -> tuple[str, tuple[_Part, ...]]:
    """A query's SQL and, per model, its fields and value converters; made once per database
    connection object (converters belong to a connection)."""
    plans = _PLANS.setdefault(connections[DEFAULT_DB_ALIAS], {})
    if name not in plans:
        plans[name] = make()
    return plans[name]


def _part(alias: str, model, names, relation: str | None) -> tuple[list[str], _Part]:
    # Model.from_db takes the values in the model's field order.
    order = {f.name: n for n, f in enumerate(model._meta.concrete_fields)}
    fields = tuple(sorted((model._meta.get_field(n) for n in names), key=lambda f: order[f.name]))
    converters, columns = [], []
    for field in fields:
        col = field.get_col(alias)
        backend = tuple(connection.ops.get_db_converters(col))
        converters.append((col, backend + tuple(col.get_db_converters(connection))))
        columns.append(f"{alias}.{connection.ops.quote_name(field.column)}")
    return columns, _Part(alias, model, fields, relation, tuple(converters))


def _item_plan() -> tuple[str, tuple[_Part, ...]]:
    columns, parts = [], []
    for alias, model, names, relation in _PARTS:
        cols, part = _part(alias, model, names, relation)
        columns += cols
        parts.append(part)
    t = {m: m._meta.db_table for m in (LabelItem, Survey, SurveyImage, WebImage)}
    sql = (
        f"SELECT {', '.join(columns)} FROM {t[LabelItem]} li "
        f"LEFT JOIN {t[Survey]} s ON s.id = li.survey_id "
        f"LEFT JOIN {t[SurveyImage]} i ON i.id = li.image_id "
        f"LEFT JOIN {t[WebImage]} w ON w.id = li.web_image_id "
        "WHERE li.id = %s"
    )
    return sql, tuple(parts)


def _instance(part: _Part, values):
    converted = []
    for value, (col, converters) in zip(values, part.converters, strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return part.model.from_db(connection.alias, [f.attname for f in part.fields], converted)


def load_item(pk: int, *, lock: bool = False) -> LabelItem | None:
    """The item with its survey, frame and Web image (None where it has none), or None when
    there is no such item. ``lock`` takes the item's row lock (``FOR UPDATE OF li`` on
    PostgreSQL; on SQLite the IMMEDIATE transaction holds the write lock already)."""
    sql, parts = _plan("item", _item_plan)
    if lock and connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF li"
    row = fetch(sql, [pk])
    if row is None:
        return None
    start = 0
    item = None
    for part in parts:
        values = row[start : start + len(part.fields)]
        start += len(part.fields)
        if part.relation is None:
            item = _instance(part, values)
            continue
        related = _instance(part, values) if getattr(item, f"{part.relation}_id") else None
        LabelItem._meta.get_field(part.relation).set_cached_value(item, related)
    return item


def _token_plan() -> tuple[str, tuple[_Part, ...]]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    columns, part = _part("u", User, [f.name for f in User._meta.concrete_fields], None)
    sql = (
        f"SELECT {', '.join(columns)} FROM {Token._meta.db_table} t "
        f"JOIN {User._meta.db_table} u ON u.{connection.ops.quote_name(User._meta.pk.column)} "
        "= t.user_id WHERE t.key = %s"
    )
    return sql, (part,)


def load_user_by_token(key: str):
    """The account an API token belongs to, or None (one SQL query, every API call makes it)."""
    sql, (part,) = _plan("token", _token_plan)
    row = fetch(sql, [key])
    return None if row is None else _instance(part, row)


def insert(model, **values):
    """INSERT one row with these field values (adapted as the ORM adapts them: JSON, dates);
    return the instance with its new primary key. One statement, no ORM composition."""
    fields = [model._meta.get_field(name) for name in values]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    params = [
        f.get_db_prep_save(values[f.name], connection) for f in fields
    ]  # FK fields take the related id: pass "item_id"-style names as the field's name
    pk = connection.ops.quote_name(model._meta.pk.column)
    sql = (
        f"INSERT INTO {model._meta.db_table} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        new_pk = cursor.fetchone()[0]
    instance = model(**{f.attname: values[f.name] for f in fields})
    instance.pk = new_pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def update(model, pk, **values) -> int:
    """UPDATE one row's fields (adapted as the ORM adapts them); return the rows changed."""
    fields = [model._meta.get_field(name) for name in values]
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    sql = (
        f"UPDATE {model._meta.db_table} SET {assignments} "
        f"WHERE {connection.ops.quote_name(model._meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pk])
        return cursor.rowcount


def fetch(sql: str, params, *, many: bool = False):
    """Run one of the hot read queries through Django's cursor; its first row (all with
    ``many``). (Preparing them on PostgreSQL, psycopg's ``prepare=True``, was tried: it saved
    the planning but bench/queue_load.py measured no gain.)"""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if many else cursor.fetchone()
