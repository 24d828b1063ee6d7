"""REST endpoints for training runs (staff only, like the pages).

    GET  /api/training/runs/                 the runs, newest first (?status=&trigger=&decision=)
    POST /api/training/runs/                 launch (202 with the run's ``url``; 409 while
                                             another run is unfinished)
    GET  /api/training/runs/<id>/            one run
    GET  /api/training/runs/<id>/progress/   what the run page polls
    GET  /api/training/runs/<id>/metrics/    both models' figures, PR curves, the decision
    POST /api/training/runs/<id>/cancel/     cancel (409 once finished)

``bearsite/api.py`` appends :data:`urlpatterns` to the API's routes.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from inference.models import ModelVersion
from inference.selectors import active_model
from inference.services import IllegalTransition
from training import selectors, services
from training.models import TrainingRun


class TrainingRunSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    page = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "page",
            "status",
            "trigger",
            "phase",
            "percent",
            "epoch",
            "epochs",
            "step",
            "steps_per_epoch",
            "global_step",
            "total_steps",
            "loss",
            "lr",
            "images_per_s",
            "eta_s",
            "attempts",
            "resumed_from_epoch",
            "base_version",
            "base_init",
            "produced_version",
            "config",
            "target_recall",
            "margin",
            "snapshot",
            "labels_at_snapshot",
            "decision",
            "decision_reason",
            "cancel_requested",
            "error",
            "note",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_page(self, obj) -> str:
        return obj.get_absolute_url()


class LaunchSerializer(serializers.Serializer):
    """``base_version`` omitted: the active model (a fresh ResNet-50 when there is none);
    ``fresh: true``: a fresh ResNet-50. Omitted settings take the defaults."""

    base_version = serializers.PrimaryKeyRelatedField(
        queryset=ModelVersion.objects.all(),
        required=False,
        allow_null=True,
        error_messages={"does_not_exist": "There is no model version {pk_value}."},
    )
    fresh = serializers.BooleanField(required=False, default=False)
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    lr = serializers.FloatField(required=False, min_value=1e-7, max_value=10)
    batch_size = serializers.IntegerField(required=False, min_value=2, max_value=4096)
    min_positives = serializers.IntegerField(required=False, min_value=1)
    freeze = serializers.ChoiceField(required=False, choices=services.FREEZE_LEVELS)
    target_recall = serializers.FloatField(required=False, min_value=0.01, max_value=1.0)
    margin = serializers.FloatField(required=False, min_value=0.0, max_value=0.99)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TrainingRunSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["status", "trigger", "decision", "base_version", "produced_version"]
    ordering_fields = ["created_at", "finished_at", "id"]

    def get_queryset(self):
        return TrainingRun.objects.select_related("base_version", "produced_version").order_by(
            "-created_at", "-pk"
        )

    @extend_schema(request=LaunchSerializer, responses={202: TrainingRunSerializer})
    def create(self, request):
        ser = LaunchSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = dict(ser.validated_data)
        fresh = data.pop("fresh", False)
        base = data.pop("base_version") if "base_version" in data else active_model()
        margin = data.pop("margin", None)
        try:
            run = services.run_create(
                trigger=TrainingRun.Trigger.API,
                config=data,
                base_version=None if fresh else base,
                margin=margin,
                created_by=request.user,
            )
        except IllegalTransition as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        body = TrainingRunSerializer(run).data
        body["url"] = request.build_absolute_uri(f"/api/training/runs/{run.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(selectors.run_progress(run=self.get_object()))

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        return Response(selectors.run_metrics(run=self.get_object()))

    @extend_schema(request=None, responses={200: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        try:
            run = services.run_cancel(run=self.get_object(), user=request.user)
        except IllegalTransition as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingRunSerializer(run).data)


_router = SimpleRouter()
_router.register("training/runs", TrainingRunViewSet, basename="api-training-run")
urlpatterns = _router.urls
