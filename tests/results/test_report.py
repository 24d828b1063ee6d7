"""The survey report page: counts, the miss-rate estimate, the map, the frame table, query budgets."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import Survey
from results import selectors
from tests.results.builders import demo_survey

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_report_counts_what_a_survey_lead_needs(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    r = selectors.survey_report(survey=d.survey)
    c = r.counts
    assert r.version == d.version
    # Two candidate tiles showing the same bear are one bear; plus uncertain and audit finds.
    assert c.confirmed_bears == 3 and c.frames_with_bears == 3
    assert (c.candidates_total, c.candidates_waiting, c.candidates_bear, c.candidates_no_bear) == (
        4,
        1,
        2,
        1,
    )
    assert (c.frames_total, c.frames_scored, c.frames_failed, c.frames_unscored) == (8, 7, 1, 0)
    assert (c.tiles_scored, c.tiles_above, c.tiles_below) == (7 * 48, 4, 7 * 48 - 4)
    assert (c.votes, c.volunteers) == (16, 3)
    assert c.hours == pytest.approx((7 * 3000 + 9 * 2000) / 3.6e6)
    # 4 candidates + 1 uncertain + 10 audit tiles shown to people, of 336 tiles.
    assert c.items_queued == 15 and c.share_looked_at == pytest.approx(15 / 336)

    page = admin_client.get(reverse("survey-report", args=[d.survey.pk]))
    assert page.status_code == 200
    text = _text(page.content.decode())
    assert "3 confirmed bears" in text and "in 3 frames" in text
    assert "1 candidate still waiting" in text
    assert "7 of 8 frames processed" in text and "1 failed" in text
    assert "336 tiles scored" in text
    assert "16 votes" in text and "by 3 volunteers" in text
    assert "4.46 % of the tiles shown to people" in text and "95.54 % less" in text


def test_estimate_names_its_method_and_gives_an_interval(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    block = selectors.survey_report(survey=d.survey).estimate
    t, r = block.tally, block.result
    assert (t.drawn, t.labelled, t.unsure, t.bears, t.tiles_below) == (10, 8, 1, 1, 332)
    assert t.sampling_probability == 0.1
    assert (block.detected, block.found_below) == (1, 2)
    # 1 bear in 8 labelled tiles, 332 tiles below the threshold: 41.5 missed; the lower bound is
    # the 2 bears people already found below the threshold.
    assert r.missed == pytest.approx(41.5)
    assert r.missed_low == 2 and r.missed_high == pytest.approx(5.571643391 * 332 / 8)
    assert r.total == pytest.approx(42.5)

    text = _text(admin_client.get(reverse("survey-report", args=[d.survey.pk])).content.decode())
    assert "About 41.5 bears missed (95 % confidence interval 2.0 – 231.2)" in text
    assert "estimated 42.5 bears in the survey (95 % CI 3.0 – 232.2)" in text
    assert "exact Poisson (Garwood) 95 % interval" in text

    cp = admin_client.get(
        reverse("survey-report", args=[d.survey.pk]), {"method": "clopper-pearson"}
    )
    assert "Clopper-Pearson" in _text(cp.content.decode())


def test_without_audit_labels_the_page_says_so_instead_of_a_number(admin_client, django_user_model):
    d = demo_survey(django_user_model, audit_labels=False)
    html = admin_client.get(reverse("survey-report", args=[d.survey.pk])).content.decode()
    text = _text(html)
    assert "No audit tile is labelled yet (10 drawn)" in text
    assert "bears missed" not in text and "data-missed" not in html


def test_a_survey_nobody_has_scored_renders_with_explanations(admin_client, survey):
    text = _text(admin_client.get(reverse("survey-report", args=[survey.pk])).content.decode())
    assert "No frame of this survey has been scored by a model yet." in text
    assert "No frame has a GPS position." in text


def test_map_draws_frames_candidates_and_bears_and_lists_frames_without_gps(
    admin_client, django_user_model
):
    d = demo_survey(django_user_model)
    html = admin_client.get(reverse("survey-report", args=[d.survey.pk])).content.decode()
    svg = re.search(r'<svg class="chart map".*?</svg>', html, re.S).group(0)
    # Bears in frames 0, 3 and 4, all with GPS; each links to its frame's page.
    assert svg.count('class="bear"') == 3
    for i in (0, 3, 4):
        assert f'href="{reverse("image-detail", args=[d.frames[i].pk])}"' in svg
    assert svg.count('class="candidate"') == 1  # frame 2's open candidate
    # Each of the 6 frames with GPS lies in a map cell of its own (they are ~110 m apart).
    assert sum(int(n) for n in re.findall(r'class="frame-cell" data-cells="(\d+)"', svg)) == 6
    assert "tile.openstreetmap" not in html and "https://" not in svg  # drawn offline
    no_gps = re.search(r"<details class=\"no-gps\".*?</details>", html, re.S).group(0)
    assert "2 frames without GPS" in _text(no_gps)
    assert d.frames[6].original_name in no_gps and d.frames[7].original_name in no_gps
    assert d.frames[0].original_name not in no_gps


def test_map_across_the_antimeridian_stays_compact(django_user_model):
    d = demo_survey(django_user_model)
    for i, f in enumerate(d.frames[:6]):
        f.longitude = 179.99 if i % 2 else -179.99
        f.save()
    m = selectors.survey_report(survey=d.survey).map
    assert m.lon_shift == 360.0
    assert m.lon_max - m.lon_min < 1.0


def test_frame_table_sorts_and_links_to_the_frames(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    url = reverse("survey-report", args=[d.survey.pk])

    def first_rows(params):
        html = admin_client.get(url, params).content.decode()
        body = re.search(r'<table class="frames">.*?</table>', html, re.S).group(0)
        return re.findall(r'<a href="/images/(\d+)/">', body)

    by_score = first_rows({"sort": "score"})
    assert by_score[0] == str(d.frames[0].pk)  # max score 0.97
    assert len(by_score) == 8
    assert by_score[-1] == str(d.frames[7].pk)  # the failed frame has no score: last
    by_score_asc = first_rows({"sort": "score", "dir": "asc"})
    assert by_score_asc[-1] == str(d.frames[7].pk) and by_score_asc[-2] == str(d.frames[0].pk)
    confirmed = first_rows({"sort": "confirmed"})
    assert set(confirmed[:3]) == {str(d.frames[i].pk) for i in (0, 3, 4)}
    candidates = first_rows({"sort": "candidates"})
    assert set(candidates[:3]) == {str(d.frames[i].pk) for i in (0, 1, 2)}


def test_frame_table_paginates(admin_client, django_user_model):
    d = demo_survey(django_user_model, n_frames=60)
    url = reverse("survey-report", args=[d.survey.pk])
    html = admin_client.get(url).content.decode()
    assert "page 1 of 2" in html
    page2 = admin_client.get(url, {"sort": "score", "dir": "desc", "page": 2}).content.decode()
    body = re.search(r'<table class="frames">.*?</table>', page2, re.S).group(0)
    assert len(re.findall(r'<a href="/images/', body)) == 10


def test_plots_show_the_flight_the_scores_and_the_pr_curve(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    r = selectors.survey_report(survey=d.survey)
    assert r.timeline.unit == "second"  # a 14 s flight
    assert (
        sum(b.frames for b in r.timeline.bins) == 8 and sum(b.bears for b in r.timeline.bins) == 3
    )
    assert sum(r.histogram.frames) == 7 and r.histogram.frames[19] == 1  # frame 0 at 0.97
    # Labelled tiles, not bears: the bear shown in two candidate tiles is two labelled tiles.
    assert sum(r.histogram.bear) == 4 and sum(r.histogram.no_bear) == 8
    assert r.histogram.threshold == 0.5
    html = admin_client.get(reverse("survey-report", args=[d.survey.pk])).content.decode()
    assert 'class="chart timeline"' in html and 'class="chart histogram"' in html
    assert 'class="pr-curve"' in html and 'class="operating"' in html
    assert f"resnet50-v1 (#{d.version.pk}), AP 0.810" in html


def test_report_is_for_staff_only(client, django_user_model, survey):
    url = reverse("survey-report", args=[survey.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(django_user_model.objects.create_user("vol", password="pw-volunteer-1"))
    assert client.get(url).status_code == 302


def _report_queries(client, survey: Survey) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("survey-report", args=[survey.pk]))
        assert response.status_code == 200
    return len(ctx.captured_queries)


def test_report_query_count_does_not_grow_with_the_survey(
    admin_client, django_user_model, django_assert_max_num_queries
):
    small = demo_survey(django_user_model, n_frames=8, name="small")
    big = demo_survey(django_user_model, n_frames=120, gps=100, name="big")
    # The first view computes and stores the report's snapshot (the aggregates); later views
    # read it (tests/results/test_report_snapshots.py): neither grows with the survey.
    assert _report_queries(admin_client, small.survey) == _report_queries(admin_client, big.survey)
    with django_assert_max_num_queries(30):
        admin_client.get(reverse("survey-report", args=[big.survey.pk]), {"sort": "confirmed"})


def test_api_report_returns_the_same_figures(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    data = admin_client.get(f"/api/surveys/{d.survey.pk}/report/").json()
    assert data["model_version"]["id"] == d.version.pk
    assert data["counts"]["confirmed_bears"] == 3
    assert data["estimate"]["available"] is True
    assert data["estimate"]["result"]["missed"] == pytest.approx(41.5)
    assert len(data["bears"]) == 3
    assert {b["frame_id"] for b in data["bears"]} == {d.frames[i].pk for i in (0, 3, 4)}


def test_survey_page_links_to_the_report(admin_client, survey):
    html = admin_client.get(reverse("survey-detail", args=[survey.pk])).content.decode()
    assert reverse("survey-report", args=[survey.pk]) in html
