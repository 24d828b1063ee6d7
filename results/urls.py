from django.urls import path

from results import views

urlpatterns = [
    path("surveys/<int:pk>/report/", views.survey_report, name="survey-report"),
    path(
        "surveys/<int:pk>/report/refresh/",
        views.survey_report_refresh,
        name="survey-report-refresh",
    ),
    path(
        "surveys/<int:pk>/report/detections.csv",
        views.survey_export,
        {"fmt": "csv"},
        name="survey-export-csv",
    ),
    path(
        "surveys/<int:pk>/report/detections.geojson",
        views.survey_export,
        {"fmt": "geojson"},
        name="survey-export-geojson",
    ),
    path(
        "surveys/<int:pk>/report/coco.json",
        views.survey_export,
        {"fmt": "coco"},
        name="survey-export-coco",
    ),
]
