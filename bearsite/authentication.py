"""API authentication: DRF's token check, with the account loaded in one SQL query.

Every API call makes this check, and the ORM's version (token, then user) cost more CPU than the
rest of a next-item call. It is the site's only token scheme (settings), so the schema has one
``tokenAuth`` security scheme, not two with the same name.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>``, answered from one joined query."""

    def authenticate_credentials(self, key):
        # Imported here: DRF imports this class while reading its settings, before apps load.
        from labeling.queues.loading import load_user_by_token

        user = load_user_by_token(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, key)
