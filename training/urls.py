from django.urls import path

from training import views

urlpatterns = [
    path("training/", views.run_list, name="training-run-list"),
    path("training/runs/<int:pk>/", views.run_detail, name="training-run-detail"),
    path("training/runs/<int:pk>/status/", views.run_status, name="training-run-status"),
    path("training/runs/<int:pk>/cancel/", views.run_cancel, name="training-run-cancel"),
    path("training/runs/<int:pk>/snapshot.json", views.run_snapshot, name="training-run-snapshot"),
]
