"""Every main endpoint x anonymous, volunteer, reviewer, admin, and a volunteer outside the
survey's team: the status code, and that nothing leaks (outside the team is 404, not 403)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.models import LabelItem, Team
from labeling.queues.roles import REVIEWER, VOLUNTEER, role_group
from tests.api.seed import seed_api_data

ROLES = ("anonymous", "volunteer", "reviewer", "admin", "outsider")

# (method, path template, expected status per role)
TABLE = [
    ("get", "/api/surveys/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=200)),
    ("get", "/api/surveys/{survey}/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=404)),
    ("post", "/api/surveys/", dict(anonymous=401, volunteer=403, reviewer=403, admin=201, outsider=403)),
    # Writes are refused by role before any lookup, the same for every id: no existence leak.
    ("patch", "/api/surveys/{survey}/", dict(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403)),
    ("get", "/api/images/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=200)),
    ("get", "/api/images/{image}/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=404)),
    ("get", "/api/batches/", dict(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403)),
    ("get", "/api/web-images/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=200)),
    ("get", "/api/models/", dict(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403)),
    ("post", "/api/models/rollback/", dict(anonymous=401, volunteer=403, reviewer=403, admin=409, outsider=403)),
    ("get", "/api/inference-jobs/", dict(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403)),
    ("get", "/api/surveys/{survey}/report/", dict(anonymous=401, volunteer=403, reviewer=403, admin=200, outsider=403)),
    ("get", "/api/label-items/{item}/", dict(anonymous=401, volunteer=200, reviewer=200, admin=200, outsider=404)),
]


@pytest.fixture
def world(django_user_model):
    admin = django_user_model.objects.create_superuser("chief", "c@example.org", "pw-chief-123")
    survey = seed_api_data(admin)
    team = Team.objects.create(name="Beaufort team")
    survey.team = team
    survey.save()
    users = {"admin": admin, "anonymous": None}
    for role, group in (("volunteer", VOLUNTEER), ("reviewer", REVIEWER), ("outsider", VOLUNTEER)):
        user = django_user_model.objects.create_user(role, f"{role}@example.org", f"pw-{role}-123")
        user.groups.add(role_group(group))
        if role != "outsider":
            team.members.add(user)
        users[role] = user
    ids = {"survey": survey.pk, "image": survey.images.first().pk, "item": LabelItem.objects.first().pk}
    return users, ids


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,expected", TABLE, ids=[f"{m.upper()} {p}" for m, p, _ in TABLE])
def test_permission_table(world, method, path, expected):
    users, ids = world
    url = path.format(**ids)
    payload = {"name": "New survey", "gsd_cm": 2.0} if method in ("post", "patch") and "surveys" in url else {}
    for role in ROLES:
        client = APIClient()
        if users[role] is not None:
            client.force_authenticate(users[role])
        response = getattr(client, method)(url, payload, format="json")
        assert response.status_code == expected[role], (role, url, response.status_code, response.content[:300])
        if role == "outsider" and response.status_code == 200 and method == "get":
            body = response.content.decode()
            assert "API survey" not in body, f"{url} leaks the team's survey to an outsider"
