"""Who may do what in the labelling queues: Django groups carrying the three permissions of
``LabelItem`` (migration 0004 creates the groups ``volunteer``, ``reviewer`` and ``admin``).
Staff users may do everything. A permission check loads the person's permissions once per
request (Django caches them on the user object)."""

from __future__ import annotations

VOLUNTEER = "volunteer"
REVIEWER = "reviewer"
ADMIN = "admin"

LABEL = "labeling.label_items"
ADJUDICATE = "labeling.adjudicate_items"
MANAGE = "labeling.manage_queues"
# Kept in step with migration 0004, which creates the groups.
ROLE_PERMISSIONS = {
    VOLUNTEER: ["label_items"],
    REVIEWER: ["label_items", "adjudicate_items"],
    ADMIN: ["label_items", "adjudicate_items", "manage_queues"],
}


def role_group(name: str):
    """The group of a role, created with its permissions if it is missing (a database flushed
    by a test, or restored without its data migrations)."""
    from django.contrib.auth.models import Group, Permission

    group, created = Group.objects.get_or_create(name=name)
    if created:
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="labeling", codename__in=ROLE_PERMISSIONS[name]
            )
        )
    return group


def _permissions(user) -> frozenset[str]:
    """The person's permissions, cached for a minute per process: every API call checks them,
    and loading them costs two queries. A role change takes effect within the minute (at once
    where ``forget`` is called)."""
    from django.core.cache import cache

    key = _cache_key(user)
    perms = cache.get(key)
    if perms is None:
        perms = frozenset(user.get_all_permissions())
        cache.set(key, perms, 60)
    return perms


def _cache_key(user) -> str:
    # date_joined tells apart two accounts that reuse an id (a test database rolled back).
    joined = user.date_joined.timestamp() if getattr(user, "date_joined", None) else 0
    return f"labeling:perms:{user.pk}:{joined}"


def forget(user) -> None:
    from django.core.cache import cache

    cache.delete(_cache_key(user))


def _allowed(user, perm: str) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return perm in _permissions(user)


def can_label(user) -> bool:
    return _allowed(user, LABEL)


def can_review(user) -> bool:
    return _allowed(user, ADJUDICATE)


def can_manage(user) -> bool:
    return _allowed(user, MANAGE)


def sees_every_survey(user) -> bool:
    """Staff see items of every survey; everyone else only surveys without a team or of their
    teams."""
    return bool(user.is_staff or user.is_superuser)
