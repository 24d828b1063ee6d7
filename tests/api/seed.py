"""A small world for API tests: a survey with frames, a model, a job, queue items."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from labeling import services as labeling_services
from labeling.models import IngestBatch, LabelItem, QueueKind, Survey, Team, WebImage
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


# --- A world for the permission table and the bad-input table ----------------------------------

PASSWORD = "pw-polar-2026"


@dataclass
class World:
    """One of everything the API serves, around a survey that belongs to a team.

    ``users`` maps the five roles of the permission table to accounts (``anonymous`` is None):
    a volunteer and a reviewer of the team, a superuser, and a volunteer outside the team.
    ``ids`` names the objects whose id goes into a URL. ``secrets`` are strings of the team's
    survey (its name, its frames' hashes) that no response to an outsider may contain.
    """

    users: dict[str, object]
    ids: dict[str, object]
    survey: Survey
    team: Team
    secrets: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


def seed_world(django_user_model) -> World:
    from datetime import timedelta

    from django.utils import timezone

    from inference import services as inference_services
    from inference.models import FrameError, InferenceJob, ModelVersion
    from labeling.queues import services as queue_services
    from labeling.queues.roles import REVIEWER, VOLUNTEER, role_group
    from training.models import TrainingRun

    admin = django_user_model.objects.create_superuser("chief", "chief@example.org", PASSWORD)
    survey = seed_api_data(admin)
    team = Team.objects.create(name="Beaufort team")
    survey.team = team
    survey.save(update_fields=["team"])
    users: dict[str, object] = {"anonymous": None, "admin": admin}
    for role, group in (("volunteer", VOLUNTEER), ("reviewer", REVIEWER), ("outsider", VOLUNTEER)):
        user = django_user_model.objects.create_user(role, f"{role}@example.org", PASSWORD)
        user.groups.add(role_group(group))
        if role != "outsider":
            team.members.add(user)
        users[role] = user

    frames = list(survey.images.order_by("pk"))
    item = LabelItem.objects.get(survey=survey, kind=QueueKind.CANDIDATES)
    gold = LabelItem.objects.create(
        kind=QueueKind.CANDIDATES, survey=survey, image=frames[1], x0=0, y0=0, x1=224, y1=224,
        score=0.2, priority=0.1, votes_needed=2, status=LabelItem.Status.RETIRED,
        consensus="no_bear", is_gold=True, gold_answer="no_bear", retired_at=timezone.now(),
    )
    queue = queue_services.survey_queue_set(survey=survey, kind=QueueKind.CANDIDATES, votes_needed=2)
    # The volunteer has answered the gold item (their votes list is not empty).
    queue_services.vote_submit(user=users["volunteer"], item_id=gold.pk, answer="no_bear")
    invite = queue_services.invite_create(created_by=admin, team=team, code="POLAR-2026", note="pilots")
    web = WebImage.objects.create(
        file="web/ice.jpg", original_name="ice-floe-web.jpg", sha256="e" * 64, phash="0" * 16,
        format="JPEG", width=640, height=480, licence="CC-BY 4.0", author="A. Photographer",
    )

    def version(name: str) -> ModelVersion:
        return ModelVersion.objects.create(
            name=name, checkpoint=f"models/{name}.pt", sha256=name[0] * 64, init="random",
            class_names=["background", "bear"], created_by=admin,
        )

    first, active, candidate = version("first"), version("second"), version("candidate")
    inference_services.model_promote(version=first, user=admin, start_inference=False)
    inference_services.model_promote(version=active, user=admin, start_inference=False)
    running = InferenceJob.objects.create(
        survey=survey, model_version=active, status=InferenceJob.Status.RUNNING, frames_total=2,
        review_threshold=0.5, created_by=admin, started_at=timezone.now(),
    )
    failed = InferenceJob.objects.create(
        survey=survey, model_version=active, status=InferenceJob.Status.FAILED, frames_total=2,
        frames_done=1, frames_failed=1, review_threshold=0.5, created_by=admin,
        started_at=timezone.now() - timedelta(minutes=5), finished_at=timezone.now(),
    )
    FrameError.objects.create(job=failed, image=frames[0], message="could not decode the frame")
    run = TrainingRun.objects.create(
        status=TrainingRun.Status.SUCCEEDED, active_slot=None, trigger=TrainingRun.Trigger.ADMIN,
        base_version=active, epochs=2, epoch=2, config={"epochs": 2}, created_by=admin,
        finished_at=timezone.now(), phase="done",
    )
    return World(
        users=users,
        survey=survey,
        team=team,
        ids={
            "survey": survey.pk, "image": frames[0].pk, "item": item.pk, "gold_item": gold.pk,
            "web_image": web.pk, "batch": survey.images.first().batch_id, "model": candidate.pk,
            "active_model": active.pk, "job": running.pk, "failed_job": failed.pk, "run": run.pk,
            "invite": invite.pk, "queue_setting": queue.pk, "queue": QueueKind.CANDIDATES,
        },
        secrets=(survey.name, *(f.sha256 for f in frames)),
    )


# Tables whose rows a refused request must leave as they were (every app of the project, the
# accounts and their tokens).
SNAPSHOT_APPS = ("labeling", "inference", "training", "results", "auth", "authtoken")


def db_snapshot() -> dict[str, list[tuple]]:
    """Every row of every table of the project, in primary-key order."""
    from django.apps import apps

    return {
        model._meta.label: list(model.objects.order_by("pk").values_list())
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in SNAPSHOT_APPS
    }


def changed_tables(before: dict, after: dict) -> list[str]:
    return sorted(label for label in before if before[label] != after.get(label))
