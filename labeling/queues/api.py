"""REST API of the labelling queues: the next item, votes, undo, skip, gold items, queue
settings, invite codes, sign-up and the dashboards. Views parse, check permissions, call one
selector or service, and answer; refusals come back as ``{"detail", "code"}`` with 400, 403, 404
or 409."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from labeling.api.filters import ConsensusFilter, VoteFilter
from labeling.api.serializers import ConsensusSerializer
from labeling.models import (
    InviteCode,
    LabelItem,
    QueueKind,
    Survey,
    SurveyQueue,
    Team,
    UnusableReason,
    Vote,
)
from labeling.queues import roles, selectors, services

# --- Permissions (authentication: the site's default, bearsite/authentication.py) ----------------


class CanLabel(permissions.BasePermission):
    message = "You are not a volunteer here."

    def has_permission(self, request, view):
        return roles.can_label(request.user)


class CanReview(permissions.BasePermission):
    message = "Only reviewers may do this."

    def has_permission(self, request, view):
        return roles.can_review(request.user)


class CanManage(permissions.BasePermission):
    message = "Only labelling admins may do this."

    def has_permission(self, request, view):
        return roles.can_manage(request.user)


def _refused(exc: services.QueueError) -> Response:
    return Response({"detail": exc.message, "code": exc.code}, status=exc.status)


# --- Item payload -------------------------------------------------------------------------------


def _url(field) -> str | None:
    return field.url if field else None


def item_payload(
    item: LabelItem, *, user, show_score: bool, claim: selectors.Claim | None = None
) -> dict:
    """What a labelling page needs to show an item. Never says whether it is a gold item; the
    model's score only when the admin setting shows it."""
    data = {
        "id": item.pk,
        "kind": item.kind,
        "queue": claim.queue if claim else item.kind,
        "status": item.status,
        "lease_expires_at": claim.lease.expires_at if claim else None,
        "box": [item.x0, item.y0, item.x1, item.y1],
        "context_box": item.context_box,
        "tile_url": _url(item.tile_crop),
        "context_url": _url(item.context_crop),
        "survey": None,
        "image": None,
        "web_image": None,
    }
    if item.survey_id:
        s = item.survey
        data["survey"] = {"id": s.pk, "name": s.name, "animal_length_px": s.animal_length_px}
    if item.image_id:
        data["image"] = {"id": item.image_id, "name": item.image.original_name}
    if item.web_image_id:
        w = item.web_image
        data["web_image"] = {
            "id": w.pk,
            "url": _url(w.file),
            "width": w.width,
            "height": w.height,
            "name": w.original_name,
            "source_page": w.source_page,
            "licence": w.licence,
            "author": w.author,
        }
    if show_score:
        data["score"] = item.score
    reviewing = (claim and claim.queue == QueueKind.ADJUDICATION) or (
        claim is None and item.status == LabelItem.Status.ADJUDICATION
    )
    if reviewing and roles.can_review(user):
        data["votes"] = [
            {
                "user": v.user.username,
                "answer": v.answer,
                "points": v.points,
                "boxes": v.boxes,
                "unusable_reason": v.unusable_reason,
            }
            for v in item.votes.filter(undone_at__isnull=True, is_gold_answer=False)
            .select_related("user")
            .order_by("created_at")
        ]
    return data


class ItemPayloadSerializer(serializers.Serializer):
    """Documentation of ``item_payload`` for the schema."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=QueueKind.choices)
    queue = serializers.CharField()
    status = serializers.CharField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    box = serializers.ListField(child=serializers.IntegerField(), help_text="tile box, frame px")
    context_box = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    tile_url = serializers.CharField(allow_null=True)
    context_url = serializers.CharField(allow_null=True)
    survey = serializers.DictField(allow_null=True)
    image = serializers.DictField(allow_null=True)
    web_image = serializers.DictField(allow_null=True)
    score = serializers.FloatField(required=False, help_text="only when the admin shows scores")
    votes = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="reviewers, adjudication"
    )


# --- Queues and the next item -------------------------------------------------------------------


class NextSerializer(serializers.Serializer):
    # Ids are bounded as the database's (a larger number is a 400, not a 500).
    survey = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1
    )
    exclude = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        default=list,
        max_length=5,
        help_text="items the page shows already (the current one, when fetching ahead)",
    )


_QUEUE_NAMES = [str(k) for k in selectors.ALL_QUEUES]


class QueueSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=QueueKind.choices)
    label = serializers.CharField()
    open = serializers.IntegerField(help_text="open items this person may see")


class QueueViewSet(viewsets.GenericViewSet):
    """The queues this person may label, with the number of open items they may see."""

    permission_classes = [CanLabel]
    serializer_class = QueueSerializer
    lookup_value_regex = "[a-z]+"
    lookup_url_kwarg = "pk"
    # A handful of rows computed from the queue sizes, in a fixed order: paginated like every
    # list, nothing to filter or order.
    filter_backends: list = []

    def _queues(self, request) -> list[dict]:
        sizes = selectors.queue_sizes(user=request.user)
        kinds = list(selectors.VOLUNTEER_KINDS)
        if roles.can_review(request.user):
            kinds.append(QueueKind.ADJUDICATION)
        out = []
        for kind in kinds:
            if kind == QueueKind.ADJUDICATION:
                n = sum(row.get("adjudication", 0) for row in sizes.values())
            else:
                n = sizes.get(kind, {}).get("open", 0)
            out.append({"kind": kind, "label": QueueKind(kind).label, "open": n})
        return out

    @extend_schema(responses=QueueSerializer(many=True))
    def list(self, request):
        page = self.paginate_queryset(self._queues(request))
        return self.get_paginated_response(page)

    @extend_schema(
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH, enum=_QUEUE_NAMES)],
        responses=QueueSerializer,
    )
    def retrieve(self, request, pk=None):
        for queue in self._queues(request):
            if queue["kind"] == pk:
                return Response(queue)
        return Response({"detail": "No such queue.", "code": "not_found"}, status=404)

    @extend_schema(
        request=NextSerializer,
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH, enum=_QUEUE_NAMES)],
        responses={
            200: ItemPayloadSerializer,
            204: OpenApiResponse(description="nothing left for you"),
        },
    )
    @action(detail=True, methods=["post"])
    def next(self, request, pk=None):
        """Hand me the next item of this queue, held for me by a lease (10 minutes by default)."""
        ser = NextSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            claim = selectors.item_next_for_user(
                user=request.user,
                queue=pk,
                survey_id=ser.validated_data.get("survey"),
                exclude=ser.validated_data["exclude"],
            )
        except selectors.QueueNotFound:
            return Response({"detail": "No such queue.", "code": "not_found"}, status=404)
        except PermissionError as exc:
            return Response({"detail": str(exc), "code": "not_reviewer"}, status=403)
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        show = selectors.labelling_settings().show_model_score
        return Response(item_payload(claim.item, user=request.user, show_score=show, claim=claim))


# --- Votes --------------------------------------------------------------------------------------


class VoteCreateSerializer(serializers.Serializer):
    item = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    answer = serializers.ChoiceField(choices=LabelItem.Answer.choices)
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        required=False,
        default=list,
        help_text="[[x, y], ...] in frame pixels (bear votes)",
    )
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4),
        required=False,
        default=list,
        help_text="[[x0, y0, x1, y1], ...] in Web image pixels",
    )
    unusable_reason = serializers.ChoiceField(
        choices=UnusableReason.choices, required=False, default="", allow_blank=True
    )
    duration_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    make_gold = serializers.BooleanField(
        required=False, default=False, help_text="reviewers: also make it a gold item"
    )


class VoteSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Vote
        fields = [
            "id",
            "item",
            "user",
            "answer",
            "points",
            "boxes",
            "unusable_reason",
            "duration_ms",
            "is_review",
            "created_at",
            "undone_at",
        ]


class VoteResultSerializer(serializers.Serializer):
    vote = serializers.IntegerField()
    item = serializers.DictField()
    gold = serializers.DictField(allow_null=True)
    undo_seconds = serializers.IntegerField()


def _gold_feedback(verdict) -> dict | None:
    if verdict is None:
        return None
    return {
        "correct": verdict.correct,
        "message": verdict.message,
        "answer": verdict.answer,
        "points": verdict.points,
    }


class VoteViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Votes: cast one, list mine (labelling admins see everyone's, `?user=<id>`), undo my last."""

    permission_classes = [CanLabel]
    serializer_class = VoteSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "vote"
    filterset_class = VoteFilter
    ordering_fields = ["created_at", "id"]

    queryset = Vote.objects.none()  # for the schema; get_queryset() is per person

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Vote.objects.none()
        qs = Vote.objects.select_related("user").order_by("-created_at", "-pk")
        if roles.can_manage(self.request.user):
            return qs  # everyone's; ?user= narrows it
        return qs.filter(user=self.request.user)

    @extend_schema(request=VoteCreateSerializer, responses={201: VoteResultSerializer})
    def create(self, request):
        """Answer an item: bear / no_bear / unsure with points, or usable (boxes) / unusable
        (reason) for a Web image. Gold items answer with feedback at once."""
        ser = VoteCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            result = services.vote_submit(
                user=request.user,
                item_id=d["item"],
                answer=d["answer"],
                points=d["points"],
                boxes=d["boxes"],
                unusable_reason=d["unusable_reason"],
                duration_ms=d.get("duration_ms"),
                make_gold=d["make_gold"],
            )
        except services.QueueError as exc:
            return _refused(exc)
        item = result.item
        return Response(
            {
                "vote": result.vote.pk,
                "item": {"id": item.pk, "status": item.status, "votes_count": item.votes_count},
                "gold": _gold_feedback(result.gold),
                "undo_seconds": settings.BEARSITE_UNDO_SECONDS,
            },
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=None, responses={200: ItemPayloadSerializer})
    @action(detail=False, methods=["post"])
    def undo(self, request):
        """Take back my last vote (within the undo window); the item comes back to me."""
        try:
            result = services.vote_undo(user=request.user)
        except services.QueueError as exc:
            return _refused(exc)
        show = selectors.labelling_settings().show_model_score
        payload = item_payload(
            result.claim.item, user=request.user, show_score=show, claim=result.claim
        )
        payload["undone_vote"] = result.vote.pk
        return Response(payload)


# --- Items --------------------------------------------------------------------------------------


class GoldSerializer(serializers.Serializer):
    answer = serializers.ChoiceField(choices=LabelItem.Answer.choices)
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        required=False,
        default=list,
    )


class GoldStateSerializer(serializers.Serializer):
    """What marking an item as gold (or unmarking it) answers."""

    id = serializers.IntegerField()
    is_gold = serializers.BooleanField()
    gold_answer = serializers.CharField(help_text="the known answer; empty when not gold")
    gold_points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()), help_text="[[x, y], ...]"
    )


class LabelItemViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One item I may see; skip it, give it back, or (reviewers) mark it as a gold item."""

    lookup_value_regex = "[0-9]+"
    permission_classes = [CanLabel]
    serializer_class = ItemPayloadSerializer

    queryset = LabelItem.objects.none()  # for the schema; get_queryset() is per person

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LabelItem.objects.none()
        return selectors.visible_items(user=self.request.user).select_related(
            "survey", "image", "web_image"
        )

    def retrieve(self, request, pk=None):
        item = get_object_or_404(self.get_queryset(), pk=pk)
        show = selectors.labelling_settings().show_model_score
        data = item_payload(item, user=request.user, show_score=show)
        if roles.can_review(request.user):
            data.update(
                {
                    "is_gold": item.is_gold,
                    "gold_answer": item.gold_answer,
                    "gold_points": item.gold_points,
                    "consensus": item.consensus,
                    "consensus_points": item.consensus_points,
                    "consensus_boxes": item.consensus_boxes,
                    "votes_count": item.votes_count,
                    "votes_needed": item.votes_needed,
                }
            )
        return Response(data)

    def _visible(self, pk) -> LabelItem:
        return get_object_or_404(selectors.visible_items(user=self.request.user).only("pk"), pk=pk)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        """Pass on this item: it is not offered to me again."""
        item = self._visible(pk)
        try:
            services.item_skip(user=request.user, item_id=item.pk)
        except services.QueueError as exc:
            return _refused(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        """Give the item back without answering (it may be offered to me again later)."""
        if not services.lease_release(user=request.user, item_id=int(pk)):
            self._visible(pk)  # no lease of mine: 404 for an item I may not see, as skip answers
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=GoldSerializer, responses={200: GoldStateSerializer})
    @action(detail=True, methods=["post", "delete"], permission_classes=[CanReview])
    def gold(self, request, pk=None):
        """Reviewers: make this a gold item with a known answer (POST), or stop (DELETE)."""
        item = self._visible(pk)
        try:
            if request.method == "DELETE":
                item = services.item_unmark_gold(user=request.user, item_id=item.pk)
            else:
                ser = GoldSerializer(data=request.data)
                ser.is_valid(raise_exception=True)
                item = services.item_mark_gold(
                    user=request.user,
                    item_id=item.pk,
                    answer=ser.validated_data["answer"],
                    points=ser.validated_data["points"],
                )
        except services.QueueError as exc:
            return _refused(exc)
        return Response(
            {
                "id": item.pk,
                "is_gold": item.is_gold,
                "gold_answer": item.gold_answer,
                "gold_points": item.gold_points,
            }
        )


# --- Consensus labels ---------------------------------------------------------------------------


class ConsensusViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Reviewers and labelling admins: the decided items with the answer their votes (or a
    reviewer) settled on, of the surveys they may see. ``?survey=``, ``?label=``, ``?queue=``."""

    permission_classes = [CanReview]
    serializer_class = ConsensusSerializer
    filterset_class = ConsensusFilter
    ordering_fields = ["retired_at", "score", "id"]
    queryset = LabelItem.objects.none()  # for the schema; get_queryset() is per person

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LabelItem.objects.none()
        return (
            selectors.visible_items(user=self.request.user)
            .filter(status=LabelItem.Status.RETIRED)
            .order_by("-retired_at", "-pk")
        )


# --- Admin: queue settings, invite codes, switches, overview ------------------------------------


class SurveyQueueSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=[(k, QueueKind(k).label) for k in selectors.TILE_KINDS])

    class Meta:
        model = SurveyQueue
        fields = [
            "id",
            "survey",
            "kind",
            "enabled",
            "votes_needed",
            "agree_votes",
            "no_bear_below",
            "point_agree_lengths",
            "weight_by_accuracy",
        ]
        validators = []  # one row per (survey, kind): create() updates an existing row

    def validate(self, attrs):
        # A change names its row by id; another survey or queue would be ignored, not applied.
        for name in ("survey", "kind") if self.instance is not None else ():
            if name in attrs and attrs[name] != getattr(self.instance, name):
                raise serializers.ValidationError(
                    {name: "A queue setting's survey and queue cannot change; POST a setting "
                           "for the other one."}
                )
        return attrs


class SurveyQueueViewSet(viewsets.ModelViewSet):
    """Per-survey queue settings: on or off, votes needed, consensus rules (labelling admins)."""

    permission_classes = [CanManage]
    serializer_class = SurveyQueueSerializer
    filterset_fields = ["survey", "kind", "enabled"]
    ordering_fields = ["survey", "kind", "votes_needed", "id"]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]

    def get_queryset(self):
        return SurveyQueue.objects.order_by("survey_id", "kind", "pk")

    def _save(self, serializer, survey: Survey, kind: str):
        fields = {k: v for k, v in serializer.validated_data.items() if k not in ("survey", "kind")}
        if "no_bear_below" not in fields:
            fields["no_bear_below"] = services.UNSET
        try:
            serializer.instance = services.survey_queue_set(survey=survey, kind=kind, **fields)
        except services.QueueError as exc:
            raise serializers.ValidationError({"detail": exc.message}) from exc

    def perform_create(self, serializer):
        self._save(
            serializer, serializer.validated_data["survey"], serializer.validated_data["kind"]
        )

    def perform_update(self, serializer):
        self._save(serializer, serializer.instance.survey, serializer.instance.kind)


class InviteCodeSerializer(serializers.ModelSerializer):
    code = serializers.CharField(required=False, allow_blank=True, max_length=40)
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True
    )
    # The same bounds on a change as on creation (invite_create); the top is the column's.
    max_uses = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)

    def validate_code(self, value: str) -> str:
        """Codes are kept upper-case and unique; a change checks here (creation retries a
        made-up code in ``invite_create``)."""
        value = value.strip().upper()
        if self.instance is not None:
            if not value:
                raise serializers.ValidationError("An invite code cannot be blank.")
            clash = InviteCode.objects.filter(code__iexact=value).exclude(pk=self.instance.pk)
            if clash.exists():
                raise serializers.ValidationError("That invite code exists already.")
        return value

    class Meta:
        model = InviteCode
        fields = [
            "id",
            "code",
            "team",
            "max_uses",
            "uses",
            "expires_at",
            "active",
            "note",
            "created_at",
        ]
        read_only_fields = ["uses", "created_at"]


class InviteCodeViewSet(viewsets.ModelViewSet):
    """Invite codes (labelling admins). A new code is made up when none is given."""

    permission_classes = [CanManage]
    serializer_class = InviteCodeSerializer
    filterset_fields = ["active", "team"]
    ordering_fields = ["created_at", "expires_at", "uses", "code", "id"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        return InviteCode.objects.order_by("-created_at", "-pk")

    def perform_create(self, serializer):
        d = serializer.validated_data
        try:
            serializer.instance = services.invite_create(
                created_by=self.request.user,
                team=d.get("team"),
                max_uses=d.get("max_uses", 50),
                expires_at=d.get("expires_at"),
                note=d.get("note", ""),
                code=d.get("code", ""),
            )
        except services.QueueError as exc:
            raise serializers.ValidationError({"code": exc.message}) from exc


class SwitchesSerializer(serializers.Serializer):
    show_model_score = serializers.BooleanField(required=False)
    open_signup = serializers.BooleanField(required=False)


class LabellingSettingsView(APIView):
    """Site-wide switches: show volunteers the model's score; open sign-up."""

    permission_classes = [CanManage]

    @extend_schema(responses={200: SwitchesSerializer})
    def get(self, request):
        s = selectors.labelling_settings()
        return Response({"show_model_score": s.show_model_score, "open_signup": s.open_signup})

    @extend_schema(request=SwitchesSerializer, responses={200: SwitchesSerializer})
    def patch(self, request):
        ser = SwitchesSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        row = services.labelling_settings_set(**ser.validated_data)
        return Response({"show_model_score": row.show_model_score, "open_signup": row.open_signup})


class OverviewView(APIView):
    """Labelling admins: queue sizes, votes per hour, agreement rate, who labelled what."""

    permission_classes = [CanManage]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(selectors.labelling_overview())


class MyLabellingView(APIView):
    """My own figures: votes, gold accuracy, my current gold rate."""

    permission_classes = [CanLabel]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(selectors.volunteer_summary(user=request.user))


class TutorialSeenView(APIView):
    permission_classes = [CanLabel]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.tutorial_mark_seen(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SignupSerializer(serializers.Serializer):
    username = serializers.RegexField(
        r"^[\w.@+-]{2,150}$", help_text="letters, digits and @ . + - _",
        error_messages={
            "invalid": "A user name is 2 to 150 letters, digits and @ . + - _ (no spaces)."
        },
    )
    password = serializers.CharField(
        write_only=True, min_length=8, style={"input_type": "password"}
    )
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    invite_code = serializers.CharField(required=False, allow_blank=True, default="")


class SignupView(APIView):
    """Create a volunteer account with an invite code (or without one when sign-up is open);
    answers with an API token."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signup"

    @extend_schema(request=SignupSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        ser = SignupSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        from django.core.exceptions import ValidationError as DjangoValidationError

        try:
            with transaction.atomic():
                user = services.volunteer_signup(**ser.validated_data)
        except services.QueueError as exc:
            return _refused(exc)
        except DjangoValidationError as exc:
            return Response({"detail": " ".join(exc.messages), "code": "weak_password"}, status=400)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"id": user.pk, "username": user.username, "token": token.key}, status=201)
