"""In Chromium: an admin logs in, creates a survey, uploads three files (one corrupt) through the
file input, and sees two ingested and one error with its reason."""

from __future__ import annotations

import pytest

from tests.labeling import images as img

pytestmark = [pytest.mark.browser, pytest.mark.embedded]


@pytest.mark.django_db(transaction=True)
def test_admin_uploads_a_batch_and_sees_the_corrupt_file_refused(live_server, browser, django_user_model, tmp_path, artifacts_dir):
    django_user_model.objects.create_superuser("lead", "lead@example.org", "survey-lead-pw-1")
    files = []
    for n in range(2):
        path = tmp_path / f"frame{n}.jpg"
        path.write_bytes(img.jpeg_bytes(640, 480, seed=n))
        files.append(str(path))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(img.truncated_jpeg())
    files.append(str(broken))

    page = browser.new_page()
    page.goto(f"{live_server.url}/surveys/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "survey-lead-pw-1")
    page.click("button[type=submit]")
    page.click("text=New survey")
    page.fill("#id_name", "Chukchi 2026")
    page.fill("#id_altitude_m", "300")
    page.fill("#id_focal_length_mm", "100")
    page.fill("#id_pixel_pitch_um", "4.0")
    page.click("text=Create survey")
    # 300 m x 4 um / 100 mm = 1.2 cm/px, so a 2 m bear is 167 px long
    page.wait_for_selector("text=1.20 cm/px")
    assert page.is_visible("text=2.0 m = 167 px")

    page.set_input_files("#frames-input", files)
    page.click("form[data-upload] button[type=submit]")
    page.wait_for_function(
        "document.querySelector('[data-ingest-text]').textContent.includes('3 of 3 files done')",
        timeout=30_000,
    )
    text = page.text_content("[data-ingest-text]")
    assert "2 ingested" in text and "1 failed" in text
    error = page.text_content("[data-errors]")
    assert "broken.jpg" in error and "truncated" in error.lower()
    page.screenshot(path=str(artifacts_dir / "ingest-upload.png"), full_page=True)

    page.reload()
    assert page.locator(".grid figure").count() == 2
    assert "truncated" in page.text_content("table").lower()
    page.close()
