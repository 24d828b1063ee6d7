"""In Chromium: a volunteer signs up with an invite code, labels ten items with the keyboard
alone, undoes one, answers a gold item and sees the feedback; a reviewer settles a disagreement;
an admin sees the counts. Prints the time from a key press to the next tile being painted
(measured in the page; not asserted: speed is a benchmark figure, bench/queue_load.py)."""

from __future__ import annotations

import statistics

import pytest
from django.conf import settings as django_settings
from django.urls import include, path, re_path
from django.views.static import serve

from labeling.models import InviteCode, LabelItem, QueueKind, Survey, Vote
from labeling.queues import roles, services
from tests.conftest import wait_for
from tests.labeling.queue_helpers import PASSWORD, make_items, make_person

pytestmark = [pytest.mark.browser]


def _media(request, path):
    # The project's media route captured MEDIA_ROOT when bearsite.urls was imported; tests put
    # media in a fresh folder per test, so this test serves it from the current setting.
    return serve(request, path, document_root=django_settings.MEDIA_ROOT)


urlpatterns = [re_path(r"^media/(?P<path>.*)$", _media), path("", include("bearsite.urls"))]


def _login(page, base, username):
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login" not in url)


def _current(page) -> str | None:
    return page.get_attribute("[data-review]", "data-item-id")


def _press_and_wait_for_next(page, key: str) -> None:
    before = _current(page)
    # A person looks at a tile before answering; the page fetches the next item meanwhile.
    page.wait_for_timeout(400)
    page.keyboard.press(key)
    page.wait_for_function(
        "(before) => { const r = document.querySelector('[data-review]');"
        " return r.dataset.itemId !== before || r.dataset.empty === 'true'; }",
        arg=before,
        timeout=10_000,
    )


def _percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@pytest.mark.django_db(transaction=True)
def test_volunteer_reviewer_and_admin_in_the_browser(live_server, browser, settings, artifacts_dir):
    settings.ROOT_URLCONF = __name__
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.BEARSITE_GOLD_RATE_MAX = settings.BEARSITE_GOLD_RATE_MIN = 0.0
    from django.core.cache import cache

    cache.clear()
    survey = Survey.objects.create(name="Beaufort 2026", gsd_cm=2.4)
    make_items(survey, n=16, votes_needed=2, pictures=True)
    (gold,) = make_items(
        survey,
        QueueKind.AUDIT,
        n=1,
        pictures=True,
        is_gold=True,
        gold_answer="bear",
        status="retired",
        consensus="bear",
    )
    gold.gold_points = [[gold.x0 + 112, gold.y0 + 112]]
    gold.save()
    (disputed,) = make_items(survey, QueueKind.UNCERTAIN, n=1, pictures=True, votes_needed=2)
    ann, ben = make_person("ann"), make_person("ben")
    services.vote_submit(
        user=ann,
        item_id=disputed.pk,
        answer="bear",
        points=[[disputed.x0 + 100, disputed.y0 + 100]],
    )
    services.vote_submit(user=ben, item_id=disputed.pk, answer="no_bear")
    make_person("rita", roles.REVIEWER)
    make_person("boss", roles.ADMIN)
    InviteCode.objects.create(code="BEAR-2026", max_uses=20)
    base = live_server.url

    # --- A volunteer signs up with the invite code and reads the tutorial ---
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/accounts/signup/?code=BEAR-2026")
    page.fill("#id_username", "kim")
    page.fill("#id_email", "kim@example.org")
    page.fill("#id_password1", "ice-floe-watcher-9")
    page.fill("#id_password2", "ice-floe-watcher-9")
    page.click("button[type=submit]")
    page.wait_for_selector("text=This is a bear")
    page.click("text=Start labelling")
    page.click("a.queue-link:has-text('Candidates')")
    page.wait_for_selector("[data-review][data-item-id]")

    # --- Ten items with the keyboard alone: marks placed with the arrow keys and Enter ---
    kim = LabelItem.objects.none()
    for n in range(10):
        if n % 3 == 0:
            page.keyboard.press("ArrowRight")
            page.keyboard.press("Enter")  # a mark at the keyboard crosshair
            assert page.locator("[data-tile-overlay] circle.mark").count() == 1
            _press_and_wait_for_next(page, "b")
        else:
            _press_and_wait_for_next(page, "n")
    from django.contrib.auth import get_user_model

    kim = get_user_model().objects.get(username="kim")
    wait_for(lambda: Vote.objects.filter(user=kim).count() == 10, timeout=10, what="ten votes")
    bear_votes = Vote.objects.filter(user=kim, answer="bear")
    assert bear_votes.count() == 4 and all(len(v.points) == 1 for v in bear_votes)
    assert all(v.duration_ms is not None for v in Vote.objects.filter(user=kim))
    page.screenshot(path=str(artifacts_dir / "review-tile.png"))

    # --- Undo the last answer: the item comes back; answer it again ---
    last = Vote.objects.filter(user=kim).latest("created_at")
    page.keyboard.press("Backspace")
    page.wait_for_function(
        f"document.querySelector('[data-review]').dataset.itemId === '{last.item_id}'"
    )
    assert "taken back" in page.text_content("[data-status]")
    wait_for(
        lambda: Vote.objects.filter(user=kim, undone_at__isnull=False).count() == 1, what="the undo"
    )
    _press_and_wait_for_next(page, "u")
    wait_for(
        lambda: Vote.objects.filter(
            user=kim, item_id=last.item_id, undone_at__isnull=True, answer="unsure"
        ).exists(),
        what="the new answer",
    )

    # --- A gold item: immediate feedback ---
    settings.BEARSITE_GOLD_RATE_MAX = settings.BEARSITE_GOLD_RATE_MIN = 1.0
    for _ in range(4):
        if _current(page) == str(gold.pk):
            break
        _press_and_wait_for_next(page, "n")
    assert _current(page) == str(gold.pk)
    page.keyboard.press("n")
    page.wait_for_selector("[data-feedback]:not([hidden])")
    assert page.text_content("[data-feedback-message]") == "There was a bear here."
    assert page.locator("[data-feedback-overlay] circle.gold").count() == 1
    page.screenshot(path=str(artifacts_dir / "review-gold-feedback.png"))
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-feedback]", state="hidden")
    timings = page.evaluate("window.bearsiteReview.timings")
    handler = [p["handler"] for p in page.evaluate("window.bearsiteReview.parts")]
    context.close()

    # --- A reviewer settles the disagreement ---
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, base, "rita")
    page.goto(f"{base}/review/")
    page.wait_for_selector(f"[data-review][data-item-id='{disputed.pk}']")
    assert "ann: bear" in page.text_content("[data-votes-list]")
    assert "ben: no bear" in page.text_content("[data-votes-list]")
    page.keyboard.press("g")  # also make it a gold item
    _press_and_wait_for_next(page, "n")
    wait_for(lambda: LabelItem.objects.get(pk=disputed.pk).status == "retired", what="the review")
    disputed.refresh_from_db()
    assert (disputed.consensus, disputed.is_gold) == ("no_bear", True)
    context.close()

    # --- An admin sees the counts ---
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, base, "boss")
    page.goto(f"{base}/label/dashboard/")
    row = page.text_content("[data-people] tbody").replace("\n", " ")
    assert "kim" in row and "rita" in row
    kim_votes = Vote.objects.filter(user=kim, undone_at__isnull=True).count()
    kim_row = page.locator("[data-people] tbody tr", has_text="kim").first
    assert kim_row.locator("td").first.text_content() == str(kim_votes)
    assert page.text_content("[data-votes-total]") == str(
        Vote.objects.filter(undone_at__isnull=True).count()
    )
    assert "Candidates" in page.text_content("[data-queue-table]")
    page.screenshot(path=str(artifacts_dir / "labelling-dashboard.png"), full_page=True)
    context.close()

    assert len(timings) >= 10
    print(
        f"\nkey press -> next tile painted: n={len(timings)} "
        f"p50={statistics.median(timings):.1f} ms p95={_percentile(timings, 0.95):.1f} ms "
        f"max={max(timings):.1f} ms (key press -> next item on screen, before painting: "
        f"p50={statistics.median(handler):.1f} ms)"
    )


@pytest.mark.django_db(transaction=True)
def test_web_image_curation_in_the_browser(live_server, browser, settings, artifacts_dir):
    """Drag a box around the bear and press A; on the next photo, press 3 (watermark)."""
    settings.ROOT_URLCONF = __name__
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    from labeling.models import WebImage
    from tests.labeling.queue_helpers import make_web_items

    cache.clear()
    first, second = make_web_items(2, pictures=True)
    kim = make_person("kim")
    services.tutorial_mark_seen(user=kim)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, live_server.url, "kim")
    page.goto(f"{live_server.url}/label/web/")
    page.wait_for_selector(f"[data-review][data-item-id='{first.pk}']")
    page.wait_for_function("document.querySelector('[data-web]').complete")
    frame = page.locator("[data-web-frame]").bounding_box()
    # The photo is 640 x 480: drag from (10 %, 20 %) to (60 %, 70 %) of it.
    page.mouse.move(frame["x"] + 0.1 * frame["width"], frame["y"] + 0.2 * frame["height"])
    page.mouse.down()
    page.mouse.move(frame["x"] + 0.4 * frame["width"], frame["y"] + 0.5 * frame["height"], steps=4)
    page.mouse.move(frame["x"] + 0.6 * frame["width"], frame["y"] + 0.7 * frame["height"], steps=4)
    page.mouse.up()
    assert page.locator("[data-web-overlay] rect.box").count() == 1
    page.screenshot(path=str(artifacts_dir / "review-web-curation.png"))
    _press_and_wait_for_next(page, "a")
    _press_and_wait_for_next(page, "3")
    wait_for(
        lambda: LabelItem.objects.filter(status="retired").count() == 2, what="two curated photos"
    )
    first.refresh_from_db()
    second.refresh_from_db()
    x0, y0, x1, y1 = first.consensus_boxes[0]
    assert (first.consensus, second.consensus, second.consensus_reason) == (
        "usable",
        "unusable",
        "watermark",
    )
    assert abs(x0 - 64) < 8 and abs(y0 - 96) < 8 and abs(x1 - 384) < 8 and abs(y1 - 336) < 8
    assert WebImage.objects.get(pk=first.web_image_id).curation == "usable"
    assert page.get_attribute("[data-review]", "data-empty") == "true"
    context.close()
