"""`manage.py ensure_admin --username NAME`: an idempotent superuser for deploys and tests.

The password comes only from the environment variable DJANGO_ADMIN_PASSWORD, so it
never shows in a process list or a shell history, and it is never printed. The
first word of the output is `created`, `updated` or `unchanged`, for a deploy's
changed_when.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

PASSWORD_VARIABLE = "DJANGO_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a password


class Command(BaseCommand):
    help = f"Create or update a superuser whose password is read from ${PASSWORD_VARIABLE}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True, help="login name of the administrator")
        parser.add_argument("--email", default=None, help="e-mail address (left as it is when omitted)")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"].strip()
        if not username:
            raise CommandError("--username must not be empty")
        password = os.environ.get(PASSWORD_VARIABLE, "")
        if not password:
            raise CommandError(
                f"{PASSWORD_VARIABLE} is unset or empty: export the administrator's password there"
            )

        user_model = get_user_model()
        with transaction.atomic():
            lookup = {user_model.USERNAME_FIELD: username}
            user = user_model.objects.select_for_update().filter(**lookup).first()
            created = user is None
            if user is None:
                user = user_model(**lookup)
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError(
                    f"{PASSWORD_VARIABLE} was refused for '{username}': {' '.join(exc.messages)}"
                ) from None
            changed = self._converge(user, password, options["email"])
            if created or changed:
                user.save()

        state = "created" if created else "updated" if changed else "unchanged"
        self.stdout.write(f"{state} administrator '{username}'")

    @staticmethod
    def _converge(user: Any, password: str, email: str | None) -> list[str]:
        """Bring the account to the wanted state; return what had to change."""
        changed = []
        for flag in ("is_active", "is_staff", "is_superuser"):
            if not getattr(user, flag):
                setattr(user, flag, True)
                changed.append(flag)
        if email is not None and user.email != email:
            user.email = email
            changed.append("email")
        if not user.has_usable_password() or not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        return changed
