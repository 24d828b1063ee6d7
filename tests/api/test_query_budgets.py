"""List endpoints cost a fixed, small number of queries, whatever the number of rows (no N+1).

Every list endpoint of the schema is in ``BUDGETS``; ``test_every_list_endpoint_has_a_budget``
fails when a new one is added without a budget."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from inference.models import InferenceJob, ModelEvent, ModelVersion
from labeling.models import (
    BatchItem,
    IngestBatch,
    InviteCode,
    LabelItem,
    QueueKind,
    Survey,
    SurveyImage,
    SurveyQueue,
    Team,
    Vote,
    WebImage,
)
from labeling.queues import roles
from tests.api.schema import collection_gets, list_operations
from training.models import TrainingRun

_n = itertools.count()


@dataclass
class World:
    admin: object
    reviewer: object
    team: Team
    batch: IngestBatch
    version: ModelVersion

    def url(self, template: str) -> str:
        return template.format(batch_pk=self.batch.pk, version_pk=self.version.pk)


# List path -> the most queries one page of it may cost. Counted with a warm cache (role lookups
# are cached) and an authenticated client: the page's count and its rows, plus a prefetch or a
# lookup where the endpoint has one.
BUDGETS = {
    "/api/surveys/": 2,
    "/api/images/": 2,
    "/api/web-images/": 3,  # + the curation items, prefetched
    "/api/batches/": 2,
    "/api/batches/{batch_pk}/items/": 3,  # + the batch (404 when missing)
    "/api/models/": 2,
    "/api/models/{version_pk}/events/": 3,  # + the version (404 when missing)
    "/api/inference-jobs/": 2,
    "/api/training/runs/": 2,
    "/api/queues/": 1,  # the queue sizes in one query: no rows of their own
    "/api/votes/": 2,
    "/api/consensus/": 2,
    "/api/queue-settings/": 2,
    "/api/invites/": 2,
}
# The lists a reviewer in a team reads too (team-scoped: the filter must not cost per row).
REVIEWER_LISTS = [
    "/api/surveys/",
    "/api/images/",
    "/api/web-images/",
    "/api/votes/",
    "/api/queues/",
    "/api/consensus/",
]
# GETs on collection paths that answer one object, not a list.
NOT_LISTS = {
    "/api/labelling/me/",
    "/api/labelling/overview/",
    "/api/labelling/settings/",
    "/api/surveys/{id}/report/",
    "/api/surveys/{id}/coco.json",
    "/api/surveys/{id}/detections.csv",
    "/api/surveys/{id}/detections.geojson",
    "/api/inference-jobs/{id}/progress/",
    "/api/training/runs/{id}/metrics/",
    "/api/training/runs/{id}/progress/",
}


def grow(world: World, n: int) -> None:
    """``n`` more rows of every listed kind, half of the surveys in the reviewer's team."""
    now = timezone.now()
    for _ in range(n):
        i = next(_n)
        survey = Survey.objects.create(
            name=f"s{i}", gsd_cm=2.0, team=world.team if i % 2 else None
        )
        batch = IngestBatch.objects.create(target="survey", source="api", survey=survey)
        image = SurveyImage.objects.create(
            survey=survey, file=f"f{i}.jpg", original_name=f"f{i}.jpg", sha256=f"{i:064d}",
            size_bytes=1, format="JPEG", width=500, height=500, batch=batch,
        )
        BatchItem.objects.create(
            batch=world.batch, name=f"f{i}.jpg", status="ingested", survey_image=image
        )
        web = WebImage.objects.create(
            file=f"w{i}.jpg", original_name=f"w{i}.jpg", sha256=f"{i:063d}w", phash="0" * 16,
            format="JPEG", width=300, height=300,
        )
        LabelItem.objects.create(
            kind=QueueKind.WEB, web_image=web, status="retired", consensus="usable",
            consensus_boxes=[[1, 1, 50, 50]], retired_at=now,
        )
        item = LabelItem.objects.create(
            kind=QueueKind.CANDIDATES, survey=survey, image=image, x1=224, y1=224, score=0.9,
            status="retired", consensus="bear", retired_at=now,
        )
        LabelItem.objects.create(
            kind=QueueKind.CANDIDATES, survey=survey, image=image, x0=224, x1=448, y1=224,
            score=0.8,
        )
        voter = get_user_model().objects.create_user(f"voter{i}")
        Vote.objects.create(item=item, user=voter, answer="bear")
        Vote.objects.create(item=item, user=world.reviewer, answer="bear")
        SurveyQueue.objects.create(survey=survey, kind=QueueKind.CANDIDATES)
        InviteCode.objects.create(code=f"CODE-{i}", team=world.team)
        version = ModelVersion.objects.create(
            name=f"m{i}", checkpoint=f"m{i}.pt", sha256="x", init="random", parent=world.version
        )
        ModelEvent.objects.create(
            version=world.version, action="promote", previous_active=version, user=voter
        )
        InferenceJob.objects.create(survey=survey, model_version=version, review_threshold=0.5)
        TrainingRun.objects.create(
            status="succeeded", active_slot=None, base_version=version, produced_version=version,
            created_by=voter, finished_at=now,
        )


@pytest.fixture
def world(admin_user, django_user_model):
    team = Team.objects.create(name="Beaufort team")
    reviewer = django_user_model.objects.create_user("rev", "rev@example.org", "pw-rev-12345")
    reviewer.groups.add(roles.role_group(roles.REVIEWER))
    team.members.add(reviewer)
    return World(
        admin=admin_user,
        reviewer=reviewer,
        team=team,
        batch=IngestBatch.objects.create(target="survey", source="api"),
        version=ModelVersion.objects.create(
            name="base", checkpoint="base.pt", sha256="x", init="random"
        ),
    )


def _measure(api: APIClient, url: str) -> tuple[int, dict, CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return len(queries.captured_queries), response.json(), queries


CASES = [(path, "admin") for path in BUDGETS] + [(path, "reviewer") for path in REVIEWER_LISTS]


@pytest.mark.django_db
@pytest.mark.parametrize("path,role", CASES, ids=[f"{role} {path}" for path, role in CASES])
def test_list_endpoint_query_count_does_not_grow(world, path, role):
    api = APIClient()
    api.force_authenticate(getattr(world, role))
    url = world.url(path)
    grow(world, 3)
    api.get(url)  # warm the role cache: the first request of a person loads their permissions
    small, _, _ = _measure(api, url)
    grow(world, 12)
    large, body, queries = _measure(api, url)
    if path != "/api/queues/":
        assert body["count"] >= 15 or (role == "reviewer" and body["count"] >= 7), body["count"]
        assert len(body["results"]) >= 7
    sql = [q["sql"][:160] for q in queries.captured_queries]
    assert large == small, sql
    assert large <= BUDGETS[path], sql


@pytest.mark.django_db
def test_every_list_endpoint_has_a_budget():
    """A list added to the API without a query budget here fails this test."""
    lists = list_operations()
    collections = collection_gets()
    assert "/api/surveys/" in lists and "/api/batches/{batch_pk}/items/" in lists
    missing = sorted((lists | (collections - NOT_LISTS)) - BUDGETS.keys())
    assert not missing, f"list endpoints without a query budget in {__name__}: {missing}"
    stale = sorted(BUDGETS.keys() - lists)
    assert not stale, f"budgets for endpoints that are no longer lists: {stale}"
