"""Query filters of the labelling API's lists (django-filter). Plain fields are named in each
viewset's ``filterset_fields``; the sets here add ids that are not looked up (``IdFilter``),
ranges, yes/no questions and names that differ from the model's (``label`` for a consensus
answer, ``queue`` for an item's kind)."""

from __future__ import annotations

import django_filters as filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from labeling.models import LabelItem, QueueKind, Survey, SurveyImage, Vote, WebImage


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(filters.NumberFilter):
    """A row's id, without loading the row: a whole number a database column can hold (anything
    else answers 400, never a database error)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class SurveyFilter(filters.FilterSet):
    team = IdFilter(field_name="team_id")

    class Meta:
        model = Survey
        fields = ["archived", "region"]


# Survey ids are filtered as plain ids, not checked against every survey: a survey hidden from
# this person gives an empty page, exactly like one that does not exist.
class SurveyImageFilter(filters.FilterSet):
    survey = IdFilter(field_name="survey_id")
    batch = IdFilter(field_name="batch_id")
    captured_after = filters.IsoDateTimeFilter(field_name="captured_at", lookup_expr="gte")
    captured_before = filters.IsoDateTimeFilter(field_name="captured_at", lookup_expr="lt")
    has_gps = filters.BooleanFilter(field_name="latitude", lookup_expr="isnull", exclude=True)
    name = filters.CharFilter(field_name="original_name", lookup_expr="icontains")

    class Meta:
        model = SurveyImage
        fields = ["format", "camera"]


class WebImageFilter(filters.FilterSet):
    batch = IdFilter(field_name="batch_id")
    near_duplicate_of = IdFilter(field_name="near_duplicate_of_id")
    is_near_duplicate = filters.BooleanFilter(
        field_name="near_duplicate_of", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = WebImage
        fields = ["curation", "licence", "author"]


class VoteFilter(filters.FilterSet):
    # Ids, not model choices: a choice filter would load the person or the item to check it.
    user = IdFilter(field_name="user_id", help_text="labelling admins: whose votes")
    item = IdFilter(field_name="item_id")
    survey = IdFilter(field_name="item__survey_id")
    queue = filters.ChoiceFilter(field_name="item__kind", choices=QueueKind.choices)
    undone = filters.BooleanFilter(field_name="undone_at", lookup_expr="isnull", exclude=True)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Vote
        fields = ["answer", "is_review"]


class ConsensusFilter(filters.FilterSet):
    survey = IdFilter(field_name="survey_id")
    image = IdFilter(field_name="image_id")
    web_image = IdFilter(field_name="web_image_id")
    model_version = IdFilter(field_name="model_version_id")
    label = filters.ChoiceFilter(field_name="consensus", choices=LabelItem.Answer.choices)
    queue = filters.ChoiceFilter(field_name="kind", choices=QueueKind.choices)
    retired_after = filters.IsoDateTimeFilter(field_name="retired_at", lookup_expr="gte")
    retired_before = filters.IsoDateTimeFilter(field_name="retired_at", lookup_expr="lt")

    class Meta:
        model = LabelItem
        fields = ["is_gold"]
