from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Invitation, token_hash
from apps.projects.models import Membership, Project, Role

INVITATION_LIFETIME = timedelta(days=7)


def invitation_create(
    *, actor: User, email: str, project: Project | None = None, role: str = Role.MEMBER
) -> tuple[Invitation, str]:
    """Create an invitation; return it and the one-time token for its link."""
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only administrators can invite people.")
    if role not in Role.values:
        raise ValidationError({"role": "Choose owner, member or viewer."})
    User = get_user_model()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": f"{email} already has an account: add them to a project instead."})
    pending = Invitation.objects.filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    )
    if pending.exists():
        raise ValidationError(
            {"email": f"{email} has a pending invitation already: revoke it to send a new one."}
        )
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        email=email,
        token_hash=token_hash(token),
        project=project,
        role=role,
        invited_by=actor,
        expires_at=timezone.now() + INVITATION_LIFETIME,
    )
    return invitation, token


def invitation_get_pending(*, token: str) -> Invitation:
    try:
        invitation = Invitation.objects.select_related("project").get(token_hash=token_hash(token))
    except Invitation.DoesNotExist as exc:
        raise ValidationError(
            "This invitation link is not valid. Ask your administrator for a new one."
        ) from exc
    if invitation.state != "pending":
        raise ValidationError(
            f"This invitation is {invitation.state}. Ask your administrator for a new one, or log in."
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, username: str, password: str) -> User:
    invitation = invitation_get_pending(token=token)
    # Lock the row: two tabs accepting the same link must not make two accounts.
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at:
        raise ValidationError("This invitation has already been used.")
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": f"The username “{username}” is taken: choose another."})
    user = User(username=username, email=invitation.email)
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password1": exc.messages}) from exc
    user.set_password(password)
    user.save()
    if invitation.project_id:
        Membership.objects.get_or_create(
            project=invitation.project, user=user, defaults={"role": invitation.role}
        )
    invitation.accepted_by = user
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_by", "accepted_at"])
    return user


def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    if not getattr(actor, "is_staff", False):
        raise PermissionDenied("Only administrators can revoke invitations.")
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(revoked_at=timezone.now())


def admin_ensure(*, username: str = "admin") -> tuple[User, str] | None:
    """Create the first administrator when there is none; return it with its generated password once."""
    User = get_user_model()
    if User.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    user = User.objects.create_superuser(username=username, email="", password=password)
    return user, password
