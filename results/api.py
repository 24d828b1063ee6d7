"""REST endpoints for the survey report and its exports (staff only, like the page).

    GET /api/surveys/<id>/report/              counts, the miss-rate estimate, confirmed bears
                                               (from the report snapshot, as of ``as_of``)
    GET /api/surveys/<id>/detections.csv       streamed; ?version=<id>&confirmed=1
    GET /api/surveys/<id>/detections.geojson   streamed; same parameters
    GET /api/surveys/<id>/coco.json            streamed; ?version=<id>&web=0

``bearsite/api.py`` appends :data:`urlpatterns` to the API's routes.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, renderers
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import Survey
from results import estimate, exports, services
from results.views import int_or_none, report_params


class StreamRenderer(renderers.BaseRenderer):
    """Lets a client that asks for CSV or GeoJSON reach the streaming view (which returns its
    own response); errors are still written as JSON."""

    media_type = "*/*"
    format = "stream"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


def report_summary(served: services.ServedReport) -> dict:
    """The API's report: the snapshot's figures, when they were computed (``as_of``, also in
    ``generated_at``), and whether newer ones are being computed (``updating``)."""
    report = served.figures
    counts = report.counts
    block = report.estimate
    return {
        "survey": {"id": served.survey.pk, "name": served.survey.name},
        "model_version": None
        if report.version is None
        else {
            "id": report.version.pk,
            "name": report.version.name,
            "status": report.version.status,
        },
        "versions": [asdict(v) for v in report.versions],
        "generated_at": served.computed_at.isoformat(),
        "as_of": served.computed_at.isoformat(),
        "updating": served.updating,
        "counts": asdict(counts)
        | {
            "frames_unscored": counts.frames_unscored,
            "frames_without_gps": counts.frames_without_gps,
            "share_looked_at": counts.share_looked_at,
            "workload_saved": counts.workload_saved,
        },
        "estimate": {
            "method": block.method,
            "method_label": estimate.METHODS[block.method],
            "threshold": block.threshold,
            "available": block.result is not None,
            "reason": block.reason,
            "audit": None if block.tally is None else asdict(block.tally),
            "result": None if block.result is None else asdict(block.result),
        },
        "bears": report.bears,
    }


VERSION = OpenApiParameter("version", int, description="model version (default: as the page)")


class SurveyReportView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        parameters=[VERSION, OpenApiParameter("method", str, enum=list(estimate.METHODS))],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request, pk: int):
        """The survey report: counts, the estimated missed bears, the confirmed bears."""
        survey = get_object_or_404(Survey, pk=pk)
        params = report_params(request.query_params)
        served = services.report_serve(
            survey=survey, version_id=params["version_id"], method=params["method"]
        )
        return Response(report_summary(served))


class SurveyExportView(APIView):
    permission_classes = [permissions.IsAdminUser]
    renderer_classes = [renderers.JSONRenderer, StreamRenderer]
    fmt = "csv"

    @extend_schema(
        parameters=[
            VERSION,
            OpenApiParameter("confirmed", bool, description="confirmed bears only (CSV, GeoJSON)"),
            OpenApiParameter("web", bool, description="include Web images (COCO; default yes)"),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, "application/geo+json"): OpenApiTypes.OBJECT,
            (200, "application/json"): OpenApiTypes.OBJECT,
        },
    )
    def get(self, request, pk: int):
        """A streamed export of the survey (attachment): CSV, GeoJSON or COCO JSON by URL."""
        survey = get_object_or_404(Survey, pk=pk)
        q = request.query_params
        return exports.export_response(
            survey=survey,
            fmt=self.fmt,
            version_id=int_or_none(q.get("version")),
            confirmed_only=q.get("confirmed") in ("1", "true", "yes"),
            include_web=q.get("web", "1") not in ("0", "false", "no"),
        )


urlpatterns = [
    path("surveys/<int:pk>/report/", SurveyReportView.as_view(), name="api-survey-report"),
    path(
        "surveys/<int:pk>/detections.csv",
        SurveyExportView.as_view(fmt="csv"),
        name="api-survey-detections-csv",
    ),
    path(
        "surveys/<int:pk>/detections.geojson",
        SurveyExportView.as_view(fmt="geojson"),
        name="api-survey-detections-geojson",
    ),
    path(
        "surveys/<int:pk>/coco.json", SurveyExportView.as_view(fmt="coco"), name="api-survey-coco"
    ),
]
