"""The REST API router: each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from labeling.api.views import (
    IngestBatchViewSet,
    SurveyImageViewSet,
    SurveyViewSet,
    WebImageViewSet,
)

router = DefaultRouter()
router.register("surveys", SurveyViewSet, basename="survey")
router.register("images", SurveyImageViewSet, basename="surveyimage")
router.register("web-images", WebImageViewSet, basename="webimage")
router.register("batches", IngestBatchViewSet, basename="batch")

urlpatterns = router.urls

from django.urls import path  # noqa: E402
from rest_framework.authtoken.views import obtain_auth_token  # noqa: E402

urlpatterns += [path("token/", obtain_auth_token, name="api-token")]
