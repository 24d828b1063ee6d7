"""Labelling pages: the queue list, the review and curation pages, adjudication, the tutorial,
dashboards, set-up (queues, invite codes, switches) and sign-up. The review pages are shells: the
page script (bearsite/review.js) talks to the REST API, so every action is in the API too."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from labeling.models import (
    InviteCode,
    QueueKind,
    Survey,
    SurveyQueue,
    UnusableReason,
    VolunteerProfile,
)
from labeling.queues import roles, selectors, services
from labeling.queues.forms import InviteForm, QueueSettingForm, SignupForm, SwitchesForm


def _requires(check):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


volunteer_required = _requires(roles.can_label)
reviewer_required = _requires(roles.can_review)
manager_required = _requires(roles.can_manage)


def _tutorial_seen(user) -> bool:
    return VolunteerProfile.objects.filter(user=user, tutorial_seen_at__isnull=False).exists()


def _first_visit(request):
    """The first visit to a labelling page goes through the tutorial."""
    if not _tutorial_seen(request.user):
        return redirect(f"{reverse('label-tutorial')}?next={request.get_full_path()}")
    return None


@volunteer_required
def label_home(request):
    if (first := _first_visit(request)) is not None:
        return first
    sizes = selectors.queue_sizes(user=request.user)
    queues = [
        {
            "kind": k,
            "label": QueueKind(k).label,
            "open": sizes.get(k, {}).get("open", 0),
            "url": reverse("label-web") if k == QueueKind.WEB else reverse("label-queue", args=[k]),
        }
        for k in selectors.VOLUNTEER_KINDS
    ]
    adjudication = (
        sum(row.get("adjudication", 0) for row in sizes.values())
        if roles.can_review(request.user)
        else None
    )
    return render(
        request,
        "labeling/queues/home.html",
        {
            "queues": queues,
            "adjudication": adjudication,
            "summary": selectors.volunteer_summary(user=request.user),
        },
    )


@volunteer_required
@require_http_methods(["GET", "POST"])
def tutorial(request):
    next_url = request.POST.get("next") or request.GET.get("next") or reverse("label-home")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("label-home")
    if request.method == "POST":
        services.tutorial_mark_seen(user=request.user)
        return redirect(next_url)
    return render(
        request,
        "labeling/queues/tutorial.html",
        {"next": next_url, "undo_seconds": settings.BEARSITE_UNDO_SECONDS},
    )


def _review_page(request, queue: str, *, template: str):
    survey = None
    if request.GET.get("survey"):
        survey = get_object_or_404(
            selectors.visible_surveys(user=request.user), pk=request.GET["survey"]
        )
    return render(
        request,
        template,
        {
            "queue": queue,
            "queue_label": QueueKind(queue).label,
            "survey": survey,
            "undo_seconds": settings.BEARSITE_UNDO_SECONDS,
            "reasons": UnusableReason.choices,
            "reviewing": queue == QueueKind.ADJUDICATION,
            "show_score": selectors.labelling_settings().show_model_score,
        },
    )


@volunteer_required
def review(request, queue: str):
    if queue not in selectors.TILE_KINDS:
        raise Http404("No such queue.")
    if (first := _first_visit(request)) is not None:
        return first
    return _review_page(request, queue, template="labeling/queues/review.html")


@volunteer_required
def curate(request):
    if (first := _first_visit(request)) is not None:
        return first
    return _review_page(request, QueueKind.WEB, template="labeling/queues/review.html")


@reviewer_required
def adjudicate(request):
    return _review_page(request, QueueKind.ADJUDICATION, template="labeling/queues/review.html")


@volunteer_required
def dashboard(request):
    context = {"summary": selectors.volunteer_summary(user=request.user)}
    if roles.can_manage(request.user):
        context["overview"] = selectors.labelling_overview()
        peak = max((h["votes"] for h in context["overview"]["votes_per_hour"]), default=0)
        context["peak_hour"] = peak or 1
    return render(request, "labeling/queues/dashboard.html", context)


@manager_required
@require_http_methods(["GET", "POST"])
def setup(request):
    """Labelling set-up for admins: queues per survey, invite codes, site switches."""
    invite_form = InviteForm(prefix="invite")
    current = selectors.labelling_settings()
    switches_form = SwitchesForm(
        prefix="switch",
        initial={
            "show_model_score": current.show_model_score,
            "open_signup": current.open_signup,
        },
    )
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "invite":
            invite_form = InviteForm(request.POST, prefix="invite")
            if invite_form.is_valid():
                code = services.invite_create(created_by=request.user, **invite_form.cleaned_data)
                messages.success(request, f"New invite code: {code.code}")
                return redirect("label-setup")
        elif action == "switches":
            switches_form = SwitchesForm(request.POST, prefix="switch")
            if switches_form.is_valid():
                services.labelling_settings_set(**switches_form.cleaned_data)
                messages.success(request, "Labelling settings saved.")
                return redirect("label-setup")
        elif action == "queue":
            survey = get_object_or_404(Survey, pk=request.POST.get("survey"))
            kind = request.POST.get("kind")
            form = QueueSettingForm(request.POST)
            if form.is_valid() and kind in selectors.TILE_KINDS:
                try:
                    services.survey_queue_set(survey=survey, kind=kind, **form.cleaned_data)
                except (services.QueueError, ValidationError) as exc:
                    messages.error(
                        request, getattr(exc, "message", None) or "; ".join(exc.messages)
                    )
                else:
                    messages.success(
                        request, f"{survey.name}: {QueueKind(kind).label} queue saved."
                    )
                return redirect("label-setup")
            messages.error(request, "Check the queue settings: " + form.errors.as_text())
        elif action == "deactivate":
            InviteCode.objects.filter(pk=request.POST.get("invite")).update(active=False)
            messages.success(request, "Invite code switched off.")
            return redirect("label-setup")
    settings_by_key = {(q.survey_id, q.kind): q for q in SurveyQueue.objects.all()}
    rows = []
    for survey in Survey.objects.filter(archived=False).select_related("team").order_by("name"):
        for kind in selectors.TILE_KINDS:
            setting = settings_by_key.get((survey.pk, kind))
            rules = selectors.queue_rules(survey=survey, kind=kind, setting=setting)
            rows.append(
                {
                    "survey": survey,
                    "kind": kind,
                    "label": QueueKind(kind).label,
                    "enabled": setting.enabled if setting else True,
                    "votes_needed": rules.votes_needed,
                    "agree_votes": rules.agree,
                    "no_bear_below": rules.no_bear_below,
                }
            )
    return render(
        request,
        "labeling/queues/setup.html",
        {
            "rows": rows,
            "invite_form": invite_form,
            "switches_form": switches_form,
            "invites": InviteCode.objects.select_related("team")[:100],
        },
    )


@require_http_methods(["GET", "POST"])
def signup(request):
    """Join as a volunteer with an invite code (no code needed when sign-up is open)."""
    if request.user.is_authenticated:
        return redirect("label-home")
    open_signup = selectors.labelling_settings().open_signup
    initial = {"invite_code": request.GET.get("code", "")}
    form = SignupForm(request.POST or None, initial=initial, invite_required=not open_signup)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            user = services.volunteer_signup(
                username=d["username"],
                email=d["email"],
                password=d["password1"],
                invite_code=d["invite_code"],
            )
        except services.QueueError as exc:
            field = {
                "bad_invite": "invite_code",
                "invite_needed": "invite_code",
                "username_taken": "username",
            }.get(exc.code)
            form.add_error(field, exc.message)
        except ValidationError as exc:
            form.add_error("password1", exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}! Here is what to look for.")
            return redirect("label-tutorial")
    return render(request, "registration/signup.html", {"form": form, "open_signup": open_signup})
