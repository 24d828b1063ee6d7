"""List endpoints cost a fixed number of queries, whatever the number of rows (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from inference.models import InferenceJob, ModelVersion
from labeling.models import IngestBatch, Survey, SurveyImage, WebImage

LISTS = ["/api/surveys/", "/api/images/", "/api/web-images/", "/api/batches/", "/api/models/",
         "/api/inference-jobs/"]


def grow(n: int, offset: int) -> None:
    for i in range(offset, offset + n):
        survey = Survey.objects.create(name=f"s{i}", gsd_cm=2.0)
        batch = IngestBatch.objects.create(target="survey", source="api", survey=survey)
        image = SurveyImage.objects.create(
            survey=survey, file=f"f{i}.jpg", original_name=f"f{i}.jpg", sha256=f"{i:064d}",
            size_bytes=1, format="JPEG", width=500, height=500, batch=batch,
        )
        WebImage.objects.create(file=f"w{i}.jpg", original_name=f"w{i}.jpg", sha256=f"{i:063d}w",
                                phash="0" * 16, format="JPEG", width=300, height=300)
        version = ModelVersion.objects.create(name=f"m{i}", checkpoint=f"m{i}.pt", sha256="x", init="random")
        InferenceJob.objects.create(survey=survey, model_version=version, review_threshold=0.5)
        image.refresh_from_db()


@pytest.mark.django_db
@pytest.mark.parametrize("url", LISTS)
def test_list_endpoint_query_count_does_not_grow(url, admin_user):
    api = APIClient()
    api.force_authenticate(admin_user)
    grow(3, 0)
    with CaptureQueriesContext(connection) as small:
        assert api.get(url).status_code == 200
    grow(12, 3)
    with CaptureQueriesContext(connection) as large:
        response = api.get(url)
        assert response.status_code == 200
    assert response.json()["count"] >= 15
    assert len(large.captured_queries) == len(small.captured_queries), [q["sql"][:120] for q in large.captured_queries]
    assert len(large.captured_queries) <= 12
