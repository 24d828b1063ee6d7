"""The REST API router: each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from labeling.api.views import (
    BatchItemViewSet,
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
router.register(r"batches/(?P<batch_pk>[0-9]+)/items", BatchItemViewSet, basename="batchitem")
from labeling.queues.api_urls import register_routes as _register_queue_routes  # noqa: E402

_queue_paths = _register_queue_routes(router)
from inference.api import register_routes as _register_inference_routes  # noqa: E402

_register_inference_routes(router)

urlpatterns = router.urls + _queue_paths

from django.urls import path  # noqa: E402

from bearsite.auth import TokenView  # noqa: E402

urlpatterns += [path("token/", TokenView.as_view(), name="api-token")]

from results.api import urlpatterns as results_urlpatterns  # noqa: E402

urlpatterns += results_urlpatterns

from training.api import urlpatterns as training_urlpatterns  # noqa: E402

urlpatterns += training_urlpatterns
