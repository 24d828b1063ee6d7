"""The report renders from a stored snapshot: few queries whatever the survey's size, "as of" its
time; new scores, votes or frames make it stale, and the queued refresh brings the new figures."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inference.models import FrameScore, ModelVersion
from labeling.models import SurveyImage
from results import selectors, services
from results.models import ReportSnapshot, SurveyChange
from results.tasks import refresh_report
from tests.results.builders import HEIGHT, START, WIDTH, XS, YS, demo_survey, make_version, vote

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _page(client, survey, **params) -> str:
    response = client.get(reverse("survey-report", args=[survey.pk]), params)
    assert response.status_code == 200
    return _text(response.content.decode())


def _late_frame(d, *, score: float) -> FrameScore:
    """One more frame, scored like the inference worker does it (a save per frame, so the
    report hears of it)."""
    frame = SurveyImage.objects.create(
        survey=d.survey,
        file="frames/late.jpg",
        original_name="late.jpg",
        sha256=hashlib.sha256(f"late-{d.survey.pk}".encode()).hexdigest(),
        size_bytes=1000,
        format="JPEG",
        width=WIDTH,
        height=HEIGHT,
        captured_at=START + timedelta(seconds=20),
        latitude=71.02,
        longitude=-141.0,
    )
    grid = np.full((len(YS), len(XS)), 0.05, dtype=np.float32)
    grid[0, 0] = score
    return FrameScore.objects.create(
        image=frame,
        model_version=d.version,
        tile=224,
        rows=len(YS),
        cols=len(XS),
        ys=YS,
        xs=XS,
        grid=grid.astype(np.float16).tobytes(),
        max_score=score,
        n_candidates=0,
        n_tiles_above=int((grid >= d.version.review_threshold).sum()),
    )


def test_the_snapshot_is_served_in_a_few_queries_whatever_the_survey_size(
    admin_client, django_user_model, django_assert_max_num_queries
):
    small = demo_survey(django_user_model, n_frames=8, name="small")
    big = demo_survey(django_user_model, n_frames=400, gps=380, name="big")
    counted = {}
    for d in (small, big):
        first = _page(admin_client, d.survey)  # computes and stores the snapshot
        assert "Figures as of" in first and "updating" not in first
        with CaptureQueriesContext(connection) as ctx:
            again = _page(admin_client, d.survey, sort="confirmed")
        counted[d.survey.name] = len(ctx.captured_queries)
        # No aggregate over the survey's rows: the figures come from the snapshot.
        sql = " ".join(q["sql"] for q in ctx.captured_queries).upper()
        assert "SUM(" not in sql and "COUNT(" not in sql and "GROUP BY" not in sql
        assert "Figures as of" in again and "3 confirmed bears" in again
    assert counted["small"] == counted["big"]
    with django_assert_max_num_queries(8):
        _page(admin_client, big.survey, sort="score", page=3)
    assert "of 400 frames processed" in _page(admin_client, big.survey)
    assert ReportSnapshot.objects.filter(survey=big.survey, is_default=True).count() == 2


def test_a_new_vote_makes_the_page_say_updating_then_show_the_new_figures(
    admin_client, django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    before = _page(admin_client, d.survey)
    assert "16 votes" in before and "by 3 volunteers" in before

    newcomer = django_user_model.objects.create(username="newcomer")
    with django_capture_on_commit_callbacks(execute=True):
        vote(d.items["open"], newcomer, "bear", points=[[958, 676]])
    with django_capture_on_commit_callbacks(execute=True) as queued:
        stale = _page(admin_client, d.survey)
    # The last snapshot, said to be updating; the refresh was queued (and ran: eager Celery).
    assert "16 votes" in stale and "updating…" in stale and "Figures as of" in stale
    assert len(queued) == 1
    fresh = _page(admin_client, d.survey)
    assert "17 votes" in fresh and "by 4 volunteers" in fresh and "updating" not in fresh


def test_a_new_frame_score_reaches_the_report_and_the_api(
    admin_client, django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    assert "7 of 8 frames processed" in _page(admin_client, d.survey)
    api = f"/api/surveys/{d.survey.pk}/report/"
    old_as_of = admin_client.get(api).json()["as_of"]

    with django_capture_on_commit_callbacks(execute=True):
        _late_frame(d, score=0.99)
    with django_capture_on_commit_callbacks(execute=True):
        data = admin_client.get(api).json()
    assert data["updating"] is True and data["counts"]["frames_total"] == 8
    data = admin_client.get(api).json()
    assert data["updating"] is False and data["as_of"] > old_as_of
    assert data["counts"]["frames_total"] == 9 and data["counts"]["frames_scored"] == 8
    assert data["counts"]["max_score"] == pytest.approx(0.99, abs=1e-3)
    assert "8 of 9 frames processed" in _page(admin_client, d.survey)


def test_the_refresh_task_run_twice_changes_nothing_the_second_time(
    admin_client, django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    _page(admin_client, d.survey)
    with django_capture_on_commit_callbacks(execute=True):
        _late_frame(d, score=0.3)
    first_gen = SurveyChange.objects.get(survey=d.survey).generation

    refresh_report.delay(d.survey.pk)
    after_first = {
        s.pk: (s.computed_at, s.source_marker, s.data)
        for s in ReportSnapshot.objects.filter(survey=d.survey)
    }
    assert all(marker == first_gen for _, marker, _ in after_first.values())
    with CaptureQueriesContext(connection) as ctx:
        refresh_report.delay(d.survey.pk)
    after_second = {
        s.pk: (s.computed_at, s.source_marker, s.data)
        for s in ReportSnapshot.objects.filter(survey=d.survey)
    }
    assert after_second == after_first
    assert len(ctx.captured_queries) <= 5  # found fresh: no aggregate ran
    assert "8 of 9 frames processed" in _page(admin_client, d.survey)


def test_refresh_now_recomputes_at_once(admin_client, client, django_user_model):
    d = demo_survey(django_user_model)
    _page(admin_client, d.survey, method="clopper-pearson")
    snap = ReportSnapshot.objects.get(survey=d.survey, method="clopper-pearson", is_default=True)
    # A write that sends no signal (as a bulk insert would): the snapshot does not know.
    SurveyImage.objects.filter(pk=d.frames[7].pk).update(latitude=71.5, longitude=-141.0)
    assert "2 frames without GPS" in _page(admin_client, d.survey, method="clopper-pearson")

    url = reverse("survey-report-refresh", args=[d.survey.pk])
    response = admin_client.post(url, {"method": "clopper-pearson"})
    assert response.status_code == 302
    assert response["Location"].endswith("?method=clopper-pearson")
    text = _page(admin_client, d.survey, method="clopper-pearson")
    assert "1 frame without GPS" in text and "Clopper-Pearson" in text
    assert ReportSnapshot.objects.get(pk=snap.pk).computed_at > snap.computed_at

    assert "Refresh now" in text

    # The same client, now a volunteer: redirected to the login page, nothing recomputed.
    done = ReportSnapshot.objects.get(pk=snap.pk).computed_at
    client.force_login(django_user_model.objects.create_user("vol", password="pw-volunteer-1"))
    response = client.post(url, {"method": "clopper-pearson"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert ReportSnapshot.objects.get(pk=snap.pk).computed_at == done


def test_an_old_snapshot_is_refreshed_even_without_a_signal(
    admin_client, django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    _page(admin_client, d.survey)
    SurveyImage.objects.filter(pk=d.frames[7].pk).update(latitude=71.5, longitude=-141.0)
    ReportSnapshot.objects.update(computed_at=timezone.now() - services.max_age() * 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert "updating…" in _page(admin_client, d.survey)
    assert "1 frame without GPS" in _page(admin_client, d.survey)


def test_promoting_another_model_changes_the_version_the_report_shows(
    admin_client, django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    other = make_version("resnet50-v2", status=ModelVersion.Status.CANDIDATE)
    late = _late_frame(d, score=0.2)
    FrameScore.objects.filter(pk=late.pk).update(model_version=other)  # scored by v2 only
    assert f"Model resnet50-v1 (#{d.version.pk}" in _page(admin_client, d.survey)
    with django_capture_on_commit_callbacks(execute=True):
        d.version.status = ModelVersion.Status.RETIRED
        d.version.save(update_fields=["status"])
        other.status = ModelVersion.Status.ACTIVE
        other.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        _page(admin_client, d.survey)
    text = _page(admin_client, d.survey)
    assert f"Model resnet50-v2 (#{other.pk}" in text and "1 of 9 frames processed" in text
    # The older version's figures are still one choice away.
    older = _page(admin_client, d.survey, version=d.version.pk)
    assert "7 of 9 frames processed" in older


def test_a_broker_that_refuses_the_refresh_is_logged_not_hidden(
    admin_client, django_user_model, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    d = demo_survey(django_user_model)
    _page(admin_client, d.survey)
    with django_capture_on_commit_callbacks(execute=True):
        _late_frame(d, score=0.3)

    def refuse(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(refresh_report, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.get(reverse("survey-report", args=[d.survey.pk]))
    assert response.status_code == 200 and "updating" in response.content.decode()
    assert "could not queue results.refresh_report" in caplog.text
    # The claim was released, so the next view tries again (outside tests, where the refresh is
    # sent at once, that page also says why the update could not be queued).
    snap = ReportSnapshot.objects.get(survey=d.survey, method="poisson")
    assert snap.refresh_requested_at is None
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        _page(admin_client, d.survey)
    assert "8 of 9 frames processed" in _page(admin_client, d.survey)


def test_deleting_a_vote_or_a_frame_marks_the_report_stale(
    django_user_model, django_capture_on_commit_callbacks
):
    d = demo_survey(django_user_model)
    services.report_refresh(survey_id=d.survey.pk)
    generation = services.survey_generation(survey_id=d.survey.pk)
    with django_capture_on_commit_callbacks(execute=True) as bumps:
        d.items["bear"].votes.first().delete()
    assert len(bumps) == 1
    with django_capture_on_commit_callbacks(execute=True) as bumps:
        d.frames[5].delete()  # its score, audit items and votes go with it: one bump for all
    assert len(bumps) == 1
    assert services.survey_generation(survey_id=d.survey.pk) == generation + 2


def test_refresh_reports_command_warms_every_survey(django_user_model, survey, capsys):
    d = demo_survey(django_user_model, name="Chukchi 2026")
    call_command("refresh_reports")
    out = capsys.readouterr().out
    assert f"survey {d.survey.pk} (Chukchi 2026): 2 snapshots written" in out
    assert f"survey {survey.pk} (Beaufort 2026): 2 snapshots written" in out  # nothing scored
    call_command("refresh_reports", "--survey", str(d.survey.pk))
    assert f"survey {d.survey.pk} (Chukchi 2026): fresh" in capsys.readouterr().out
    call_command("refresh_reports", "--survey", str(d.survey.pk), "--force")
    assert "2 snapshots written" in capsys.readouterr().out


def test_frame_table_pages_are_the_same_through_the_index_path(django_user_model):
    d = demo_survey(django_user_model, n_frames=45)
    d.frames[10].scores.update(max_score=d.frames[11].scores.get().max_score)  # a tie on score
    per_frame = {d.frames[0].pk: 1, d.frames[3].pk: 1, d.frames[4].pk: 1}

    def rows(sort, descending, page, scored):
        return selectors.frame_page(
            survey=d.survey,
            version_id=d.version.pk,
            per_frame=per_frame,
            sort=sort,
            descending=descending,
            page=page,
            per_page=10,
            count=45,
            scored=scored,
        ).rows

    # 44 of the 45 frames are scored: pages 1-4 take the inner join, page 5 the outer one.
    for sort in ("score", "candidates"):
        for descending in (True, False):
            for page in (1, 2, 3, 4, 5):
                fast = rows(sort, descending, page, scored=44)
                assert fast == rows(sort, descending, page, scored=None), (sort, page)
    # (And the first pages did take the index path.)
    with CaptureQueriesContext(connection) as ctx:
        selectors.frame_page(
            survey=d.survey, version_id=d.version.pk, per_frame={}, per_page=10, count=45, scored=44
        )
    assert "INNER JOIN" in ctx.captured_queries[-1]["sql"]
