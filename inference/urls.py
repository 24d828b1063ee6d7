from django.urls import path

from inference import views

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("models/<int:pk>/promote/", views.model_promote, name="model-promote"),
    path("models/rollback/", views.model_rollback, name="model-rollback"),
    path("surveys/<int:survey_pk>/infer/", views.job_start, name="job-start"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/status/", views.job_status, name="job-status"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:pk>/retry/", views.job_retry, name="job-retry"),
    path("images/<int:pk>/scores.json", views.image_scores, name="image-scores"),
]
