"""Log-in with a rate limit: the page and the token endpoint each allow a few attempts a minute
per client address (the ``login`` throttle rate), then answer 429."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        rate = api_settings.DEFAULT_THROTTLE_RATES["login"]
        allowed, period = SimpleRateThrottle.parse_rate(None, rate)
        key = f"login-page:{request.META.get('REMOTE_ADDR', '')}"
        attempts = cache.get_or_set(key, 0, period)
        if attempts >= allowed:
            return HttpResponse(
                "Too many log-in attempts from this address; wait a minute and try again.",
                status=429, content_type="text/plain",
            )
        response = super().post(request, *args, **kwargs)
        if response.status_code != 302:  # a failed attempt counts; a success does not
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, period)
        return response


class TokenView(ObtainAuthToken):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"
