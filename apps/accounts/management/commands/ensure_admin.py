from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.accounts.services import admin_ensure


class Command(BaseCommand):
    help = "Create the first administrator if there is none, and print its password once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        created = admin_ensure(username=username)
        if created is None:
            self.stdout.write("An administrator exists already; its password is not shown again.")
            return
        user, password = created
        bar = "=" * 64
        self.stdout.write(
            f"{bar}\nFirst administrator created. This password is shown only once:\n"
            f"  username: {user.get_username()}\n  password: {password}\n"
            f"Change it after logging in (top right → Change password).\n{bar}"
        )
