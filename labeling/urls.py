from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.home, name="home"),
    path("surveys/", views.survey_list, name="survey-list"),
    path("surveys/new/", views.survey_create, name="survey-create"),
    path("surveys/<int:pk>/", views.survey_detail, name="survey-detail"),
    path("surveys/<int:pk>/upload/", views.survey_upload, name="survey-upload"),
    path("batches/<int:pk>/", views.batch_detail, name="batch-detail"),
    path("batches/<int:pk>/status/", views.batch_status, name="batch-status"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
    path("images/<int:pk>/frame.dzi", views.image_dzi, name="image-dzi"),
    path(
        "images/<int:pk>/frame_files/<int:level>/<int:col>_<int:row>.jpeg",
        views.image_dzi_tile, name="image-dzi-tile",
    ),
    path("web/", views.web_image_list, name="web-list"),
    path("web/upload/", views.web_upload, name="web-upload"),
    path("web/import-urls/", views.web_import_urls, name="web-import-urls"),
]
