"""Survey batch ingest through the services, the pages, the API and the folder command."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.urls import reverse

from labeling import services
from labeling.models import BatchItem, IngestBatch, SurveyImage
from tests.labeling import images as img

pytestmark = pytest.mark.embedded

GPS = dict(latitude=71.123456, longitude=-156.654321, altitude_m=305.5)


def gps_jpeg(seed=0, **kw):
    exif = img.make_exif(captured_at=datetime(2026, 4, 12, 10, 30, 5), **{**GPS, **kw})
    return img.jpeg_bytes(640, 480, seed=seed, exif=exif)


def incoming(name, data):
    return services.IncomingFile(name=name, fileobj=io.BytesIO(data), size=len(data))


def bad_inputs():
    return {
        "notes.txt": (img.text_file(), "not_an_image"),
        "empty.jpg": (img.zero_byte(), "empty"),
        "cut.jpg": (img.truncated_jpeg(), "truncated"),
        "bomb.png": (img.bomb_png(), "too_large"),
        "small.jpg": (img.tiny_jpeg(), "too_small"),
        "anim.gif": (img.gif_bytes(), "unsupported_format"),
    }


def run_batch(survey, files, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.UPLOAD, survey=survey,
            files=[incoming(n, d) for n, d in files],
        )
    batch.refresh_from_db()
    return batch


@pytest.mark.django_db
def test_each_bad_file_fails_alone_with_its_reason(survey, django_capture_on_commit_callbacks):
    bad = bad_inputs()
    files = [("good1.jpg", gps_jpeg(1))] + [(n, d) for n, (d, _) in bad.items()]
    files += [("good2.png", img.png_bytes(400, 300)), ("good3.tif", img.tiff_bytes(400, 300))]
    batch = run_batch(survey, files, django_capture_on_commit_callbacks)

    assert batch.status == IngestBatch.Status.DONE
    assert sorted(survey.images.values_list("original_name", flat=True)) == [
        "good1.jpg", "good2.png", "good3.tif"]
    items = {i.name: i for i in batch.items.all()}
    for name, (_, code) in bad.items():
        assert items[name].status == BatchItem.Status.FAILED, name
        assert items[name].error_code == code, (name, items[name].error)
        assert len(items[name].error) > 15  # a sentence a person can act on
    assert "truncated" in items["cut.jpg"].error.lower()
    assert "224" in items["small.jpg"].error


@pytest.mark.django_db
def test_exif_gps_time_and_thumbnail_are_recorded(survey, django_capture_on_commit_callbacks):
    run_batch(survey, [("gps.jpg", gps_jpeg(3))], django_capture_on_commit_callbacks)
    frame = SurveyImage.objects.get()
    assert (frame.width, frame.height, frame.format) == (640, 480, "JPEG")
    assert frame.latitude == pytest.approx(71.123456, abs=1e-6)
    assert frame.longitude == pytest.approx(-156.654321, abs=1e-6)
    assert frame.altitude_m == pytest.approx(305.5, abs=1e-3)
    assert frame.captured_at == datetime(2026, 4, 12, 10, 30, 5, tzinfo=UTC)
    assert len(frame.sha256) == 64
    from PIL import Image

    with frame.thumbnail.open("rb") as fh:
        thumb = Image.open(fh)
        assert max(thumb.size) <= 320 and thumb.size[0] > thumb.size[1]


@pytest.mark.django_db
def test_duplicate_in_same_survey_is_reported_and_skipped(survey, django_capture_on_commit_callbacks):
    data = gps_jpeg(5)
    batch = run_batch(survey, [("a.jpg", data), ("b.jpg", data)], django_capture_on_commit_callbacks)
    assert survey.images.count() == 1
    dup = batch.items.get(name="b.jpg")
    assert dup.status == BatchItem.Status.DUPLICATE and "a.jpg" in dup.error
    # a later batch with the same frame skips it too
    again = run_batch(survey, [("c.jpg", data)], django_capture_on_commit_callbacks)
    assert again.items.get().status == BatchItem.Status.DUPLICATE
    assert survey.images.count() == 1


@pytest.mark.django_db
def test_upload_page_accepts_files_and_zip(admin_client, survey, django_capture_on_commit_callbacks):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("day1/f1.jpg", gps_jpeg(11))
        zf.writestr("day1/f2.jpg", gps_jpeg(12))
        zf.writestr("day1/readme.txt", b"flight notes")
        zf.writestr("__MACOSX/day1/._f1.jpg", b"junk")
    archive.seek(0)
    archive.name = "day1.zip"
    single = io.BytesIO(gps_jpeg(13))
    single.name = "f3.jpg"
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(
            reverse("survey-upload", args=[survey.pk]), {"files": [archive, single]},
            HTTP_ACCEPT="application/json",
        )
    assert resp.status_code == 202
    batch = IngestBatch.objects.get(pk=resp.json()["batch"])
    names = set(survey.images.values_list("original_name", flat=True))
    assert names == {"day1.zip:day1/f1.jpg", "day1.zip:day1/f2.jpg", "f3.jpg"}
    failed = batch.items.get(status=BatchItem.Status.FAILED)
    assert failed.name.endswith("readme.txt") and failed.error_code == "not_an_image"
    page = admin_client.get(reverse("batch-detail", args=[batch.pk])).content.decode()
    assert "readme.txt" in page and failed.error in page
    status = admin_client.get(reverse("batch-status", args=[batch.pk])).json()
    assert status["ingested"] == 3 and status["failed"] == 1 and status["percent"] == 100


@pytest.mark.django_db
def test_oversized_upload_is_refused_with_the_limit(survey, settings, django_capture_on_commit_callbacks):
    settings.BEARSITE_MAX_UPLOAD_FILE_BYTES = 10_000
    batch = run_batch(survey, [("big.jpg", gps_jpeg(2)), ("ok.jpg", img.jpeg_bytes(300, 300, quality=20))],
                      django_capture_on_commit_callbacks)
    big = batch.items.get(name="big.jpg")
    assert big.status == BatchItem.Status.FAILED and "limit" in big.error and "MB" in big.error
    assert survey.images.filter(original_name="ok.jpg").exists()


@pytest.mark.django_db(transaction=True)
def test_killed_worker_leaves_no_half_recorded_frame_and_retry_finishes(survey, monkeypatch):
    batch = services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.UPLOAD, survey=survey,
        files=[incoming("f.jpg", gps_jpeg(21))], enqueue=False,
    )
    item = batch.items.get()
    real_create = SurveyImage.objects.create

    def dies(**kw):
        real_create(**kw)  # the row is written inside the transaction ...
        raise KeyboardInterrupt("worker killed")  # ... and the process dies before commit

    monkeypatch.setattr(SurveyImage.objects, "create", dies)
    with pytest.raises(KeyboardInterrupt):
        services.item_ingest(item_id=item.pk)
    assert SurveyImage.objects.count() == 0
    item.refresh_from_db()
    assert item.status == BatchItem.Status.PENDING

    monkeypatch.setattr(SurveyImage.objects, "create", real_create)
    services.items_ingest(item_ids=[item.pk])  # the redelivered task
    services.items_ingest(item_ids=[item.pk])  # and once more: nothing changes
    assert SurveyImage.objects.count() == 1
    item.refresh_from_db()
    assert item.status == BatchItem.Status.INGESTED
    batch.refresh_from_db()
    assert batch.status == IngestBatch.Status.DONE


@pytest.mark.django_db
def test_import_survey_command_is_resumable(survey, tmp_path):
    folder = tmp_path / "flight"
    (folder / "a").mkdir(parents=True)
    for n in range(3):
        (folder / "a" / f"f{n}.jpg").write_bytes(gps_jpeg(30 + n))
    (folder / "broken.jpg").write_bytes(img.corrupt_jpeg())
    out = io.StringIO()
    call_command("import_survey", survey.name, str(folder), stdout=out, stderr=io.StringIO())
    assert survey.images.count() == 3
    assert "1 failed" in out.getvalue() and "broken.jpg" in out.getvalue()

    (folder / "a" / "f3.jpg").write_bytes(gps_jpeg(40))  # new frame since the first run
    out = io.StringIO()
    call_command("import_survey", str(survey.pk), str(folder), stdout=out, stderr=io.StringIO())
    assert "3 already in survey" in out.getvalue()
    assert survey.images.count() == 4
    assert "1 ingested" in out.getvalue()


@pytest.mark.django_db
def test_api_batch_upload_answers_202_and_reports_errors(admin_user, survey, django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    good = io.BytesIO(gps_jpeg(50))
    good.name = "g.jpg"
    bad = io.BytesIO(img.text_file())
    bad.name = "bad.jpg"
    with django_capture_on_commit_callbacks(execute=True):
        resp = api.post(f"/api/surveys/{survey.pk}/batches/", {"files": [good, bad]}, format="multipart")
    assert resp.status_code == 202
    batch_url = resp.json()["url"]
    progress = api.get(batch_url).json()["progress"]
    assert progress["ingested"] == 1 and progress["failed"] == 1
    items = api.get(batch_url + "items/?status=failed").json()["results"]
    assert items[0]["name"] == "bad.jpg" and items[0]["error_code"] == "not_an_image"
