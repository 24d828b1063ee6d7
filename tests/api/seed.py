"""A small world for API tests: a survey with frames, a model, a job, queue items."""

from __future__ import annotations

import io
import re
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


# --- A world for the fuzz run -------------------------------------------------------------------

# The kinds /api/queues/{id}/ answers for.
QUEUE_KINDS = ("candidates", "uncertain", "audit", "web", "adjudication")


def seed_fuzz_world(django_user_model) -> World:
    """``seed_world`` and the rest of what an operation of the schema acts on, so that each one
    has at least one real object (the fuzz run is pointed at ``ids``' values):

    * a Web batch ingested as uploads are (files, thumbnails, batch items): two Web images, each
      with its curation item; one still open, one curated (unusable) by the reviewer;
    * a candidate item the votes disagree on (the adjudication queue), a decided one (consensus);
    * a frame score with detections (frame detail, exports, report), a rejected model (beside
      the promoted ones' events), a training run's figures (metrics, progress).

    ``ids`` holds lists here: ``fuzz_ids(world, paths)`` maps each path of the schema to them.
    The models have no weights: whoever runs the API on this world keeps the gpu tasks from
    running (test_fuzz hands them over).
    """
    import numpy as np

    from inference import services as inference_services
    from inference.models import FrameScore, ModelVersion
    from labeling.queues import services as queue_services
    from training.models import TrainingRun

    world = seed_world(django_user_model)
    users, ids = world.users, world.ids
    admin, survey = users["admin"], world.survey
    frames = list(survey.images.order_by("pk"))

    # Web photos, ingested the way an upload is: each gets its curation item.
    web_batch = labeling_services.batch_create(
        target=IngestBatch.Target.WEB, source=IngestBatch.Source.API, created_by=admin,
        enqueue=False,
        files=[labeling_services.IncomingFile(name=f"web{i}.jpg",
                                              fileobj=io.BytesIO(img.jpeg_bytes(320, 240, seed=40 + i)))
               for i in range(2)],
    )
    for batch_item in web_batch.items.order_by("pk"):
        labeling_services.item_ingest(item_id=batch_item.pk)
    webs = list(WebImage.objects.filter(batch=web_batch).order_by("pk"))
    assert len(webs) == 2, [(i.status, i.error) for i in web_batch.items.all()]
    queue_services.web_image_curate(user=users["reviewer"], web_image_id=webs[1].pk,
                                    curation="unusable", unusable_reason="not_from_above")
    web_items = list(LabelItem.objects.filter(web_image__in=webs).order_by("pk"))

    # One candidate the votes disagree on (a reviewer's), one decided by its votes.
    disputed = LabelItem.objects.create(kind=QueueKind.CANDIDATES, survey=survey, image=frames[0],
                                        x0=220, y0=0, x1=444, y1=224, score=0.7, priority=0.7,
                                        votes_needed=2)
    queue_services.vote_submit(user=users["volunteer"], item_id=disputed.pk, answer="unsure")
    queue_services.vote_submit(user=admin, item_id=disputed.pk, answer="no_bear")
    decided = LabelItem.objects.create(kind=QueueKind.CANDIDATES, survey=survey, image=frames[1],
                                       x0=220, y0=220, x1=444, y1=444, score=0.6, priority=0.6,
                                       votes_needed=2)
    for role in ("volunteer", "admin"):
        queue_services.vote_submit(user=users[role], item_id=decided.pk, answer="no_bear")

    # The active model scored the first frame; its candidates are the frame's detections.
    active = ModelVersion.objects.get(pk=ids["active_model"])
    grid = np.array([[0.9, 0.7], [0.1, 0.05]], dtype=np.float16)
    FrameScore.objects.create(
        image=frames[0], model_version=active, job_id=ids["failed_job"], rows=2, cols=2,
        ys=[0, 220], xs=[0, 220], grid=grid.tobytes(), max_score=0.9, n_candidates=2,
        n_tiles_above=2,
    )
    LabelItem.objects.filter(image=frames[0], kind=QueueKind.CANDIDATES).update(
        model_version_id=active.pk
    )
    rejected = ModelVersion.objects.create(
        name="rejected", checkpoint="models/rejected.pt", sha256="r" * 64, init="random",
        class_names=["background", "bear"], created_by=admin,
    )
    inference_services.model_reject(version=rejected, reason="worse than the active model",
                                    user=admin)

    run = TrainingRun.objects.get(pk=ids["run"])
    run.history = [{"epoch": e, "train_loss": 0.5 / e, "val_loss": 0.6 / e} for e in (1, 2)]
    run.loss_curve = [[1, 0.6], [2, 0.4]]
    run.new_metrics = {"recall": 0.95, "precision": 0.5, "tp": 19, "fp": 19, "fn": 1, "tn": 61}
    run.active_metrics = {"recall": 0.9, "precision": 0.45, "tp": 18, "fp": 22, "fn": 2, "tn": 58}
    run.compared_version = active
    run.save()

    world.ids = {
        "survey": [survey.pk],
        "image": [f.pk for f in frames],
        "item": [ids["item"], ids["gold_item"], disputed.pk, decided.pk, *(i.pk for i in web_items)],
        "web_image": [ids["web_image"], *(w.pk for w in webs)],
        "batch": sorted({ids["batch"], web_batch.pk}),
        "model": sorted({ids["model"], ids["active_model"], rejected.pk,
                         *ModelVersion.objects.values_list("pk", flat=True)}),
        "job": [ids["job"], ids["failed_job"]],
        "run": [ids["run"]],
        "invite": [ids["invite"]],
        "queue_setting": [ids["queue_setting"]],
        "queue": list(QUEUE_KINDS),
    }
    return world


# Which ``ids`` entry a path's parameter names, by the path's first segments.
FUZZ_PATHS = {
    "/api/batches/": "batch",
    "/api/images/": "image",
    "/api/inference-jobs/": "job",
    "/api/invites/": "invite",
    "/api/label-items/": "item",
    "/api/models/": "model",
    "/api/queue-settings/": "queue_setting",
    "/api/queues/": "queue",
    "/api/surveys/": "survey",
    "/api/training/runs/": "run",
    "/api/web-images/": "web_image",
}


def fuzz_ids(world: World, paths) -> dict[str, tuple[str, list]]:
    """For each path with a parameter: the parameter's name and the ids of real objects."""
    out = {}
    for path in paths:
        m = re.search(r"\{(\w+)\}", path)
        if m is None:
            continue
        prefix = next((p for p in FUZZ_PATHS if path.startswith(p)), None)
        assert prefix is not None, f"no seeded object for {path}: add it to FUZZ_PATHS"
        out[path] = (m.group(1), world.ids[FUZZ_PATHS[prefix]])
    return out


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
