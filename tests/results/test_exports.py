"""Exports: CSV and GeoJSON of detections, COCO of labelled tiles and Web image boxes. Each
parses, round-trips, names the model version and the time, and streams."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import LabelItem, QueueKind, WebImage
from results import exports
from tests.results.builders import demo_survey, vote

pytestmark = pytest.mark.django_db


def _body(response) -> str:
    assert response.status_code == 200, response.content[:500]
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def _csv(client, d, **params) -> list[dict]:
    response = client.get(reverse("survey-export-csv", args=[d.survey.pk]), params)
    assert response["Content-Type"].startswith("text/csv")
    disposition = response["Content-Disposition"]
    assert f"-detections-v{d.version.pk}-" in disposition and disposition.endswith('.csv"')
    return list(csv.DictReader(io.StringIO(_body(response))))


def test_csv_has_one_row_per_candidate_and_per_confirmed_bear(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    rows = _csv(admin_client, d)
    assert list(rows[0]) == exports.COLUMNS
    by_item = {int(r["item_id"]): r for r in rows}
    # 4 candidates, but two show the same bear: 3 candidate rows; plus the uncertain and the
    # audit bears.
    assert len(rows) == 5
    assert d.items["bear_dup"].pk not in by_item
    bear = by_item[d.items["bear"].pk]
    assert (bear["x"], bear["y"], bear["position_source"]) == ("500.0", "400.0", "people")
    assert bear["frame_file"] == d.frames[0].original_name
    assert bear["captured_at"] == "2026-04-12T10:00:00Z"
    assert float(bear["latitude"]) == pytest.approx(71.0) and float(
        bear["longitude"]
    ) == pytest.approx(-141.0)
    assert (bear["consensus"], bear["votes"], bear["votes_bear"], bear["votes_no_bear"]) == (
        "bear",
        "2",
        "2",
        "0",
    )
    assert bear["score"] == "0.97" and bear["queue"] == "candidates"
    assert bear["location_source"] == "frame centre (GPS)"
    # Half the diagonal of a 1200 x 900 px frame at 2.4 cm/px.
    assert float(bear["location_uncertainty_m"]) == pytest.approx(18.0)
    open_ = by_item[d.items["open"].pk]
    assert (open_["x"], open_["y"], open_["position_source"], open_["consensus"]) == (
        "958.0",
        "676.0",
        "model",
        "",
    )
    assert by_item[d.items["no_bear"].pk]["consensus"] == "no_bear"
    # Every row names the model version and the export time.
    assert {r["model_version"] for r in rows} == {"resnet50-v1"}
    assert {r["model_version_id"] for r in rows} == {str(d.version.pk)}
    assert len({r["exported_at"] for r in rows}) == 1 and rows[0]["exported_at"].endswith("Z")
    # Frames without GPS: empty coordinates, not zero.
    assert all(r["latitude"] != "0" for r in rows)


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_defused(
    admin_client, django_user_model
):
    d = demo_survey(django_user_model)
    frame = d.frames[0]
    frame.original_name = '=HYPERLINK("http://evil.example","x").jpg'
    frame.save()
    rows = _csv(admin_client, d)
    names = {r["frame_file"] for r in rows if r["item_id"] == str(d.items["bear"].pk)}
    assert names == {"'" + frame.original_name}
    assert all(not r["frame_file"].startswith("=") for r in rows)


def test_csv_of_confirmed_bears_only(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    rows = _csv(admin_client, d, confirmed="1")
    assert len(rows) == 3 and {r["consensus"] for r in rows} == {"bear"}
    assert len({r["bear_id"] for r in rows}) == 3
    assert {r["queue"] for r in rows} == {"candidates", "uncertain", "audit"}


GEOJSON_SCHEMA = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"const": "Feature"},
                    "geometry": {
                        "type": "object",
                        "required": ["type", "coordinates"],
                        "properties": {
                            "type": {"const": "Point"},
                            "coordinates": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 3,
                                "prefixItems": [
                                    {"type": "number", "minimum": -180, "maximum": 180},
                                    {"type": "number", "minimum": -90, "maximum": 90},
                                ],
                            },
                        },
                    },
                    "properties": {"type": "object"},
                },
            },
        },
    },
}


def test_geojson_is_a_valid_feature_collection_of_points(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    response = admin_client.get(reverse("survey-export-geojson", args=[d.survey.pk]))
    assert response["Content-Type"] == "application/geo+json"
    data = json.loads(_body(response))
    jsonschema.validate(data, GEOJSON_SCHEMA)
    assert data["properties"]["model_version"] == f"resnet50-v1 (#{d.version.pk})"
    assert data["properties"]["exported_at"].endswith("Z")
    # The same detections as the CSV, less those in frames without GPS (none here: frames 6, 7
    # have no detection), each at its frame's position, longitude first.
    features = data["features"]
    assert len(features) == 5 and data["skipped_without_gps"] == 0
    first = next(f for f in features if f["properties"]["item_id"] == d.items["bear"].pk)
    assert first["geometry"]["coordinates"] == [pytest.approx(-141.0), pytest.approx(71.0)]
    assert set(first["properties"]) == set(exports.COLUMNS)
    assert len({f["id"] for f in features}) == len(features)


def test_geojson_leaves_out_frames_without_gps_and_says_how_many(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    frame = d.frames[0]
    frame.latitude = frame.longitude = None
    frame.save()
    data = json.loads(_body(admin_client.get(reverse("survey-export-geojson", args=[d.survey.pk]))))
    assert data["skipped_without_gps"] == 1 and len(data["features"]) == 4


def _add_web_images(users):
    made = []
    for i, (boxes, curation) in enumerate(
        [([[10, 20, 110, 80]], "usable"), ([], "usable"), ([[5, 5, 50, 50]], "unusable")]
    ):
        web = WebImage.objects.create(
            file=f"web/bear{i}.jpg",
            original_name=f"bear{i}.jpg",
            sha256=f"{i}".ljust(64, "a"),
            phash="0" * 16,
            format="JPEG",
            width=400,
            height=300,
            curation=curation,
            licence="CC-BY-4.0",
            author="someone",
        )
        it = LabelItem.objects.create(
            kind=QueueKind.WEB,
            web_image=web,
            status=LabelItem.Status.RETIRED,
            consensus="usable" if curation == "usable" else "unusable",
        )
        vote(it, users[0], it.consensus, boxes=boxes)
        made.append(it)
    return made


def test_coco_loads_in_pycocotools_with_negatives_and_web_boxes(
    admin_client, django_user_model, tmp_path
):
    from pycocotools.coco import COCO

    d = demo_survey(django_user_model)
    web_ok, web_no_box, web_unusable = _add_web_images(d.users)
    response = admin_client.get(reverse("survey-export-coco", args=[d.survey.pk]))
    path = tmp_path / "coco.json"
    path.write_text(_body(response))
    coco = COCO(str(path))
    data = coco.dataset
    assert data["info"]["model_version"] == f"resnet50-v1 (#{d.version.pk})"
    assert data["info"]["date_created"].endswith("Z")
    assert coco.loadCats(coco.getCatIds()) == [
        {"id": 1, "name": "polar_bear", "supercategory": "animal"}
    ]
    images = {img["id"]: img for img in coco.loadImgs(coco.getImgIds())}
    # Survey tiles with a bear / no-bear answer: 4 bear (two show one bear), 8 negatives (the
    # "no bear" candidate and 7 audit tiles); "unsure" and open items are left out.
    survey_tiles = [i for i in images.values() if i["source"] == "survey"]
    assert len(survey_tiles) == 4 + 8
    negatives = [i for i in survey_tiles if i["consensus"] == "no_bear"]
    assert len(negatives) == 8
    assert all(coco.getAnnIds(imgIds=[i["id"]]) == [] for i in negatives)
    bear_tile = images[d.items["bear"].pk]
    assert (bear_tile["width"], bear_tile["height"]) == (224, 224)
    assert bear_tile["file_name"] == d.items["bear"].tile_crop.name
    (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[bear_tile["id"]]))
    # A square of one bear length (2 m at 2.4 cm/px = 83.3 px) around (500, 400) in the frame,
    # i.e. (90, 118) in the tile whose origin is (410, 282).
    x, y, w, h = ann["bbox"]
    assert (x + w / 2, y + h / 2) == (pytest.approx(90, abs=0.1), pytest.approx(118, abs=0.1))
    assert w == pytest.approx(83.3, abs=0.1) and ann["category_id"] == 1
    # Web images: the usable one with a box is in; without a box or unusable, out.
    assert web_ok.pk in images and web_no_box.pk not in images and web_unusable.pk not in images
    (web_ann,) = coco.loadAnns(coco.getAnnIds(imgIds=[web_ok.pk]))
    assert web_ann["bbox"] == [10, 20, 100, 60]
    assert data["skipped"] == 1
    # Masks can be made from the annotations (segmentation polygons are well formed).
    assert coco.annToMask(ann).sum() > 0


def test_coco_without_web_images(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    web_ok, *_ = _add_web_images(d.users)
    url = reverse("survey-export-coco", args=[d.survey.pk])
    data = json.loads(_body(admin_client.get(url, {"web": "0"})))
    assert web_ok.pk not in {i["id"] for i in data["images"]}


def _export_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        _body(client.get(url))
    return len(ctx.captured_queries)


@pytest.mark.parametrize("fmt", ["csv", "geojson", "coco"])
def test_export_queries_do_not_grow_with_the_survey(admin_client, django_user_model, fmt):
    small = demo_survey(django_user_model, n_frames=8, name="small")
    big = demo_survey(django_user_model, n_frames=80, name="big")
    for i, frame in enumerate(big.frames[10:70]):
        LabelItem.objects.create(
            kind=QueueKind.CANDIDATES,
            survey=big.survey,
            image=frame,
            x0=0,
            y0=0,
            x1=224,
            y1=224,
            score=0.6,
            centre_x=100,
            centre_y=100,
            model_version_id=big.version.pk,
            status=LabelItem.Status.RETIRED,
            consensus="no_bear" if i % 2 else "bear",
            consensus_points=[] if i % 2 else [[100, 100]],
        )
    name = {
        "csv": "survey-export-csv",
        "geojson": "survey-export-geojson",
        "coco": "survey-export-coco",
    }[fmt]
    assert _export_queries(admin_client, reverse(name, args=[small.survey.pk])) == _export_queries(
        admin_client, reverse(name, args=[big.survey.pk])
    )


def test_api_exports_stream_the_same_files(admin_client, django_user_model):
    d = demo_survey(django_user_model)
    api = admin_client.get(f"/api/surveys/{d.survey.pk}/detections.csv", HTTP_ACCEPT="text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(api))))
    assert len(rows) == 5
    geo = json.loads(_body(admin_client.get(f"/api/surveys/{d.survey.pk}/detections.geojson")))
    assert geo["type"] == "FeatureCollection"
    coco = json.loads(_body(admin_client.get(f"/api/surveys/{d.survey.pk}/coco.json")))
    assert coco["info"]["model_version_id"] == d.version.pk


def test_exports_are_for_staff_only(client, django_user_model, survey):
    client.force_login(django_user_model.objects.create(username="volunteer"))
    assert client.get(reverse("survey-export-csv", args=[survey.pk])).status_code == 302
    assert (
        client.get(f"/api/surveys/{survey.pk}/detections.csv", HTTP_ACCEPT="text/csv").status_code
        == 403
    )
