"""Log-in, sign-up and voting are throttled: past the rate a client gets 429, and what is already
stored is unchanged."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.mark.django_db
def test_token_endpoint_is_throttled(django_user_model):
    django_user_model.objects.create_user("vol", "v@example.org", "right-password-1")
    api = APIClient()
    codes = [api.post("/api/token/", {"username": "vol", "password": "wrong"}).status_code for _ in range(11)]
    assert codes[:10] == [400] * 10 and codes[10] == 429


@pytest.mark.django_db
def test_login_page_is_throttled_after_failed_attempts(client, django_user_model):
    django_user_model.objects.create_user("vol", "v@example.org", "right-password-1")
    for _ in range(10):
        assert client.post("/accounts/login/", {"username": "vol", "password": "nope"}).status_code == 200
    blocked = client.post("/accounts/login/", {"username": "vol", "password": "right-password-1"})
    assert blocked.status_code == 429 and b"Too many" in blocked.content


@pytest.mark.django_db
def test_signup_is_throttled():
    api = APIClient()
    codes = [api.post("/api/signup/", {"username": f"u{i}", "password": "x"}, format="json").status_code for i in range(6)]
    assert codes[-1] == 429 and 429 not in codes[:5]
