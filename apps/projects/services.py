"""Writes on projects and memberships. Each raises ValidationError (with the field at fault) for input a
person can fix, so a form can show the message beside that field."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from apps.projects.models import PROJECT_NAME_MAX_LENGTH, Membership, Project, Role


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": "Give the project a name."})
    if len(name) > PROJECT_NAME_MAX_LENGTH:
        raise ValidationError(
            {
                "name": f"A project name has at most {PROJECT_NAME_MAX_LENGTH} characters (this one has {len(name)})."
            }
        )
    return name


@transaction.atomic
def project_create(*, user: User, name: str, description: str = "") -> Project:
    """Create a project with `user` as its owner."""
    name = _clean_name(name)
    if Project.objects.filter(created_by=user, name__iexact=name).exists():
        raise ValidationError({"name": f"You already have a project named “{name}”."})
    try:
        # A savepoint, so a lost race on the unique constraint leaves the outer transaction usable.
        with transaction.atomic():
            project = Project.objects.create(name=name, description=description.strip(), created_by=user)
    except IntegrityError as exc:
        raise ValidationError({"name": f"You already have a project named “{name}”."}) from exc
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project


def membership_require_editor(*, project: Project, actor: User, message: str) -> None:
    """PermissionDenied with `message` unless `actor` may change things in `project` (members, owners)."""
    membership = Membership.objects.filter(project=project, user=actor).first()
    if membership is None or not membership.can_edit:
        raise PermissionDenied(message)


def _require_owner(*, project: Project, actor: User) -> None:
    if not Membership.objects.filter(project=project, user=actor, role=Role.OWNER).exists():
        raise PermissionDenied("Only the project's owners can change its members.")


@transaction.atomic
def membership_add(*, project: Project, actor: User, username: str, role: str) -> Membership:
    _require_owner(project=project, actor=actor)
    if role not in Role.values:
        raise ValidationError({"role": "Choose owner, member or viewer."})
    User = get_user_model()
    try:
        user = User.objects.get(username__iexact=(username or "").strip(), is_active=True)
    except User.DoesNotExist as exc:
        raise ValidationError(
            {"username": f"No active user is called “{username}”. Invite them first (Admin → Invite)."}
        ) from exc
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"username": f"{user.get_username()} is already in this project."})
    return Membership.objects.create(project=project, user=user, role=role)


def _check_an_owner_remains(*, membership: Membership, new_role: str | None) -> None:
    if membership.role == Role.OWNER and new_role != Role.OWNER:
        owners = Membership.objects.filter(project=membership.project, role=Role.OWNER).count()
        if owners <= 1:
            raise ValidationError("A project needs at least one owner: make somebody else an owner first.")


@transaction.atomic
def membership_set_role(*, membership: Membership, actor: User, role: str) -> Membership:
    _require_owner(project=membership.project, actor=actor)
    if role not in Role.values:
        raise ValidationError({"role": "Choose owner, member or viewer."})
    # Lock the project's memberships so two owners demoting each other at once cannot leave none.
    list(Membership.objects.select_for_update().filter(project=membership.project))
    _check_an_owner_remains(membership=membership, new_role=role)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    _require_owner(project=membership.project, actor=actor)
    list(Membership.objects.select_for_update().filter(project=membership.project))
    _check_an_owner_remains(membership=membership, new_role=None)
    membership.delete()
