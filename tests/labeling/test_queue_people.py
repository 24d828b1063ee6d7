"""People: signing up with an invite code, open sign-up, roles, password reset, the tutorial."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from labeling.models import InviteCode, VolunteerProfile
from labeling.queues import roles, services
from tests.labeling.queue_helpers import PASSWORD, fast_passwords, make_person, make_team  # noqa: F401

pytestmark = pytest.mark.django_db
User = get_user_model()


def signup(client, **fields):
    data = {
        "username": "kim",
        "email": "kim@example.org",
        "password1": "ice-floe-watcher-9",
        "password2": "ice-floe-watcher-9",
        "invite_code": "",
    } | fields
    return client.post(reverse("signup"), data)


def test_the_three_roles_exist_with_their_permissions():
    perms = {
        g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()
    }
    assert perms["volunteer"] == {"label_items"}
    assert perms["reviewer"] == {"label_items", "adjudicate_items"}
    assert perms["admin"] == {"label_items", "adjudicate_items", "manage_queues"}


def test_a_volunteer_joins_with_an_invite_code_and_lands_on_the_tutorial(client):
    team = make_team("Churchill crew")
    code = services.invite_create(team=team, max_uses=2, note="school visit")
    response = signup(client, invite_code=code.code.lower())
    assert response.status_code == 302 and response["Location"] == reverse("label-tutorial")
    kim = User.objects.get(username="kim")
    assert roles.can_label(kim) and not roles.can_review(kim)
    assert list(kim.teams.all()) == [team]
    assert VolunteerProfile.objects.get(user=kim).joined_with == code
    code.refresh_from_db()
    assert code.uses == 1
    # Logged in already: the tutorial page shows, then the queues.
    page = client.get(reverse("label-tutorial")).content.decode()
    assert "This is a bear" in page and "These do not count" in page and "<kbd>B</kbd>" in page
    client.post(reverse("label-tutorial"), {"next": reverse("label-home")})
    assert client.get(reverse("label-home")).status_code == 200


@pytest.mark.parametrize(
    "make_code, message",
    [
        (lambda: None, "An invite code is needed"),
        (lambda: InviteCode.objects.create(code="USED-UP", max_uses=1, uses=1), "not valid"),
        (
            lambda: InviteCode.objects.create(
                code="OLD-CODE", expires_at=timezone.now() - timedelta(days=1)
            ),
            "not valid",
        ),
        (lambda: InviteCode.objects.create(code="SWITCHED-OFF", active=False), "not valid"),
    ],
)
def test_signing_up_needs_a_valid_invite_code(client, make_code, message):
    code = make_code()
    response = signup(client, invite_code=code.code if code else "")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.filter(username="kim").exists()


def test_open_signup_needs_no_code(client, settings):
    settings.BEARSITE_OPEN_SIGNUP = True
    assert signup(client).status_code == 302
    assert roles.can_label(User.objects.get(username="kim"))


def test_a_taken_name_and_a_weak_password_are_refused(client):
    make_person("kim")
    code = services.invite_create(max_uses=5)
    assert "taken" in signup(client, invite_code=code.code).content.decode()
    weak = signup(
        client, username="lee", invite_code=code.code, password1="password", password2="password"
    )
    assert "too common" in weak.content.decode()
    code.refresh_from_db()
    assert code.uses == 0  # a refused sign-up does not use the code


def test_login_page_links_to_sign_up_and_password_reset(client):
    page = client.get(reverse("login")).content.decode()
    assert reverse("signup") in page and reverse("password_reset") in page


def test_a_volunteer_resets_a_forgotten_password(client):
    kim = make_person("kim")
    response = client.post(reverse("password_reset"), {"email": "kim@example.org"})
    assert response.status_code == 302 and response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["kim@example.org"]
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "new-ice-floe-44", "new_password2": "new-ice-floe-44"},
    )
    assert done.status_code == 302 and done["Location"] == reverse("password_reset_complete")
    kim.refresh_from_db()
    assert kim.check_password("new-ice-floe-44") and not kim.check_password(PASSWORD)
