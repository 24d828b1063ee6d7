"""Create the admin account once. The password comes from BEARSITE_ADMIN_PASSWORD, or is
generated and printed this one time; a later run reuses the account and prints no secret."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin account if it does not exist."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("BEARSITE_ADMIN_USER", "admin"))

    def handle(self, *args, username, **options):
        User = get_user_model()
        given = os.environ.get("BEARSITE_ADMIN_PASSWORD")
        user = User.objects.filter(username=username).first()
        if user is not None:
            if given and not user.check_password(given):
                user.set_password(given)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin account '{username}': password set from BEARSITE_ADMIN_PASSWORD.")
            else:
                self.stdout.write(f"Admin account '{username}' exists.")
            return
        password = given or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        bar = "=" * 64
        self.stdout.write(self.style.SUCCESS(
            f"{bar}\nAdmin account created.\n  username: {username}\n"
            + ("  password: (from BEARSITE_ADMIN_PASSWORD)\n" if given else f"  password: {password}\n"
               "  This password is shown once; keep it (or set BEARSITE_ADMIN_PASSWORD).\n")
            + bar
        ))
