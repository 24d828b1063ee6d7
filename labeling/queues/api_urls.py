"""API routes of the labelling queues, registered on the project's router (bearsite/api.py)."""

from django.urls import path

from labeling.queues import api


def register_routes(router) -> list:
    """Register the viewsets on ``router``; return the plain paths to add to the API's URLs."""
    router.register("queues", api.QueueViewSet, basename="queue")
    router.register("votes", api.VoteViewSet, basename="vote")
    router.register("label-items", api.LabelItemViewSet, basename="labelitem")
    router.register("consensus", api.ConsensusViewSet, basename="consensus")
    router.register("queue-settings", api.SurveyQueueViewSet, basename="queuesetting")
    router.register("invites", api.InviteCodeViewSet, basename="invite")
    return [
        path(
            "labelling/settings/",
            api.LabellingSettingsView.as_view(),
            name="api-labelling-settings",
        ),
        path("labelling/overview/", api.OverviewView.as_view(), name="api-labelling-overview"),
        path("labelling/me/", api.MyLabellingView.as_view(), name="api-labelling-me"),
        path("labelling/tutorial-seen/", api.TutorialSeenView.as_view(), name="api-tutorial-seen"),
        path("signup/", api.SignupView.as_view(), name="api-signup"),
    ]
