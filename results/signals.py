"""Receivers that mark a survey's report data as changed (connected in ``ResultsConfig.ready``).

Each receiver is O(1): it finds the survey id (from the instance, a cached relation, or one
indexed lookup) and registers one marker bump to run after the writer's transaction commits
(``transaction.on_commit``): the writer's transaction never waits on the marker row, and a
rolled-back write bumps nothing. Nothing here aggregates or enqueues; the report page decides
when to recompute (``results.services.report_serve``).

What is watched, and why:

- saves of ``FrameScore``, ``FrameError`` (frames scored or failed; the inference worker creates
  a frame's candidate and audit items in the same transaction as its score), ``LabelItem``
  (consensus reached or undone), ``Vote`` (made, undone), ``SurveyImage`` (frames ingested, GPS),
  ``InferenceJob`` (thresholds, audit rate);
- saves and deletes of ``ModelVersion`` (promotion and rollback change the version a report shows
  and its precision-recall curve): every survey;
- deletes of ``Vote``, ``LabelItem``, ``SurveyImage``, ``FrameError`` and ``InferenceJob``,
  except inside the cascade of a parent that has its own receiver (one bump per deletion, not one
  per row; a deleted person's votes bump every survey once).
  ``FrameScore`` deletes are not watched: a score is only ever deleted by the cascade of its frame,
  its model version or its survey, which bump (or, for a survey, take the snapshots along)
  already; a listener would also make Django load every score row, grid included, to delete a
  survey.

Writes that send no signal (``bulk_create``, ``QuerySet.update``) are caught by the snapshots'
maximum age instead (``results.services``).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from inference.models import FrameError, FrameScore, InferenceJob, ModelVersion
from labeling.models import LabelItem, Survey, SurveyImage, Vote
from results import services


def _bump_after_commit(survey_id: int | None) -> None:
    if survey_id is not None:
        transaction.on_commit(lambda: services.survey_data_changed(survey_id=survey_id))


def _once_per_origin(origin, survey_id: int | None) -> bool:
    """True the first time a deletion (``origin``: the object or queryset ``delete()`` was called
    on) reports this survey: a cascade over thousands of rows bumps each survey once."""
    if origin is None:
        return True
    try:
        seen = origin.__dict__.setdefault("_results_surveys_bumped", set())
    except AttributeError:
        return True
    if survey_id in seen:
        return False
    seen.add(survey_id)
    return True


def _cached_survey_id(instance, relation: str, lookup) -> int | None:
    """``instance.<relation>.survey_id`` without a query when the related row is loaded already
    (the writers create these rows from a loaded frame or item), else one indexed lookup."""
    descriptor = getattr(type(instance), relation)
    if descriptor.is_cached(instance):
        related = getattr(instance, relation)
        return None if related is None else related.survey_id
    related_id = getattr(instance, f"{relation}_id")
    return None if related_id is None else lookup(related_id)


def _frame_survey(image_id: int) -> int | None:
    return SurveyImage.objects.filter(pk=image_id).values_list("survey_id", flat=True).first()


def _item_survey(item_id: int) -> int | None:
    return LabelItem.objects.filter(pk=item_id).values_list("survey_id", flat=True).first()


def _job_survey(job_id: int) -> int | None:
    return InferenceJob.objects.filter(pk=job_id).values_list("survey_id", flat=True).first()


# --- Saves ----------------------------------------------------------------------------------------


def frame_score_saved(sender, instance: FrameScore, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(_cached_survey_id(instance, "image", _frame_survey))


def frame_error_saved(sender, instance: FrameError, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(_cached_survey_id(instance, "job", _job_survey))


def label_item_saved(sender, instance: LabelItem, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(instance.survey_id)  # None for a Web image: no survey report


def vote_saved(sender, instance: Vote, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(_cached_survey_id(instance, "item", _item_survey))


def survey_image_saved(sender, instance: SurveyImage, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(instance.survey_id)


def inference_job_saved(sender, instance: InferenceJob, raw=False, **kwargs) -> None:
    if not raw:
        _bump_after_commit(instance.survey_id)


def model_version_changed(sender, instance: ModelVersion, raw=False, **kwargs) -> None:
    if not raw:
        transaction.on_commit(lambda: services.all_surveys_data_changed())


# --- Deletes --------------------------------------------------------------------------------------


def _cascade_from(origin, *models) -> bool:
    """Whether ``origin`` (what ``delete()`` was called on: an instance or a queryset) is one of
    ``models``."""
    model = origin.model if isinstance(origin, QuerySet) else type(origin)
    return issubclass(model, models)


def vote_deleted(sender, instance: Vote, origin=None, **kwargs) -> None:
    if _cascade_from(origin, LabelItem, SurveyImage, Survey):
        return  # the item's, frame's or survey's own receiver covers it
    if _cascade_from(origin, Vote):
        survey_id = _cached_survey_id(instance, "item", _item_survey)
        if _once_per_origin(origin, survey_id):
            _bump_after_commit(survey_id)
    elif _once_per_origin(origin, "every survey"):
        # A person (or something else that owns votes) deleted: any survey they labelled.
        transaction.on_commit(lambda: services.all_surveys_data_changed())


def label_item_deleted(sender, instance: LabelItem, origin=None, **kwargs) -> None:
    if _cascade_from(origin, SurveyImage, Survey):
        return
    if _once_per_origin(origin, instance.survey_id):
        _bump_after_commit(instance.survey_id)


def survey_image_deleted(sender, instance: SurveyImage, origin=None, **kwargs) -> None:
    if _cascade_from(origin, Survey):
        return  # the survey's snapshots go with it
    if _once_per_origin(origin, instance.survey_id):
        _bump_after_commit(instance.survey_id)


def frame_error_deleted(sender, instance: FrameError, origin=None, **kwargs) -> None:
    if _cascade_from(origin, SurveyImage, Survey, InferenceJob):
        return
    # A retry deletes every error of one job: look the job's survey up once.
    if _once_per_origin(origin, ("job", instance.job_id)):
        _bump_after_commit(_job_survey(instance.job_id))


def inference_job_deleted(sender, instance: InferenceJob, origin=None, **kwargs) -> None:
    if _cascade_from(origin, Survey):
        return
    if _once_per_origin(origin, instance.survey_id):
        _bump_after_commit(instance.survey_id)


def connect() -> None:
    """Connect the receivers (``ResultsConfig.ready``); ``dispatch_uid`` keeps it idempotent."""
    from django.db.models.signals import post_delete, post_save

    saves = [
        (FrameScore, frame_score_saved),
        (FrameError, frame_error_saved),
        (LabelItem, label_item_saved),
        (Vote, vote_saved),
        (SurveyImage, survey_image_saved),
        (InferenceJob, inference_job_saved),
        (ModelVersion, model_version_changed),
    ]
    deletes = [
        (Vote, vote_deleted),
        (LabelItem, label_item_deleted),
        (SurveyImage, survey_image_deleted),
        (FrameError, frame_error_deleted),
        (InferenceJob, inference_job_deleted),
        (ModelVersion, model_version_changed),
    ]
    for model, receiver in saves:
        post_save.connect(receiver, sender=model, dispatch_uid=f"results-{receiver.__name__}")
    for model, receiver in deletes:
        post_delete.connect(receiver, sender=model, dispatch_uid=f"results-{receiver.__name__}-del")
