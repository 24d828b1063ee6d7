"""A small world for API tests: a survey with frames, a model, a job, queue items."""

from __future__ import annotations

import io

from labeling import services as labeling_services
from labeling.models import IngestBatch, LabelItem, QueueKind, Survey
from tests.labeling import images as img


def seed_api_data(admin):
    survey = Survey.objects.create(name="API survey", gsd_cm=50.0, created_by=admin)
    batch = labeling_services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.API, survey=survey, enqueue=False,
        files=[labeling_services.IncomingFile(name=f"a{i}.jpg", fileobj=io.BytesIO(img.jpeg_bytes(444, 444, seed=i)))
               for i in range(2)],
    )
    for item in batch.items.all():
        labeling_services.item_ingest(item_id=item.pk)
    frame = survey.images.first()
    LabelItem.objects.create(kind=QueueKind.CANDIDATES, survey=survey, image=frame, x0=0, y0=0, x1=224, y1=224,
                             score=0.9, priority=0.9, votes_needed=2)
    return survey
