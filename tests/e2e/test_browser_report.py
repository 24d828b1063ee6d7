"""In Chromium: a survey lead opens the report of a demo survey from the survey page, reads the
counts and the estimated miss rate, zooms the map (drawn offline, no tile service), sorts the
frame table, follows a bear on the map to its frame, and asks for fresh figures ("Refresh now").
A screenshot is saved as an artifact."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.results.builders import demo_survey

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_survey_lead_reads_the_report_and_map(
    live_server, browser, django_user_model, artifacts_dir
):
    django_user_model.objects.create_superuser("lead", "lead@example.org", "survey-lead-pw-1")
    d = demo_survey(django_user_model)
    host = urlparse(live_server.url).netloc
    outside: list[str] = []
    errors: list[str] = []

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on(
        "request",
        lambda r: (
            urlparse(r.url).netloc != host and r.url.startswith("http") and outside.append(r.url)
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.url}/surveys/{d.survey.pk}/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "survey-lead-pw-1")
    page.click("button[type=submit]")
    page.click("text=Report: counts, miss rate, map, exports")
    page.wait_for_selector("svg.map")

    assert "3" in page.text_content("[data-stat=confirmed] .n")
    assert "Figures as of" in page.text_content("[data-as-of]")
    missed = page.text_content("[data-missed]")
    assert "41.5" in missed and "95 % confidence interval" in missed
    assert "Poisson" in page.text_content("[data-method]")
    assert page.locator("svg.map circle.bear").count() == 3
    assert page.locator("svg.map circle.candidate").count() == 1
    assert "2 frames without GPS" in page.text_content("[data-no-gps] summary")

    # Zoom the map with the wheel: the view box narrows.
    before = page.get_attribute("svg.map", "viewBox")
    page.locator("svg.map").scroll_into_view_if_needed()
    box = page.locator("svg.map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"document.querySelector('svg.map').getAttribute('viewBox') !== '{before}'"
    )
    after = page.get_attribute("svg.map", "viewBox")
    assert float(after.split()[2]) < float(before.split()[2])
    page.dblclick("svg.map > rect")  # reset
    assert [float(v) for v in page.get_attribute("svg.map", "viewBox").split()] == [
        float(v) for v in before.split()
    ]

    page.screenshot(path=str(artifacts_dir / "results-report.png"), full_page=True)

    # Sort the frames by confirmed bears: the frames with a bear come first.
    page.click("[data-sort=confirmed]")
    page.wait_for_url("**sort=confirmed**")
    first = page.get_attribute("table.frames tbody tr:first-child a", "href")
    assert first in {f"/images/{d.frames[i].pk}/" for i in (0, 3, 4)}

    # A bear on the map leads to its frame.
    page.locator("svg.map a.bear-link").first.click()
    page.wait_for_url("**/images/*/")
    assert urlparse(page.url).path in {f"/images/{d.frames[i].pk}/" for i in (0, 3, 4)}

    # "Refresh now" recomputes the figures and comes back to the report.
    page.go_back()
    page.wait_for_selector("svg.map")
    before_as_of = page.get_attribute("[data-as-of]", "data-as-of")
    page.click("[data-refresh]")
    page.wait_for_selector("svg.map")
    assert page.get_attribute("[data-as-of]", "data-as-of") >= before_as_of
    assert "3" in page.text_content("[data-stat=confirmed] .n")

    assert outside == [], f"the report reached outside the site: {outside}"
    assert errors == []
    page.close()
