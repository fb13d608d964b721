from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.forms import InvitationAcceptForm, InvitationForm
from apps.accounts.models import Invitation
from apps.accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_get_pending,
    invitation_revoke,
)
from apps.core.http import AuthedRequest


@staff_member_required(login_url="login")
@require_http_methods(["GET", "POST"])
def invitation_list(request: AuthedRequest) -> HttpResponse:
    form = InvitationForm(request.POST or None)
    link = None
    if request.method == "POST" and form.is_valid():
        try:
            invitation, token = invitation_create(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            link = request.build_absolute_uri(reverse("invitation-accept", kwargs={"token": token}))
            messages.success(request, f"Invitation for {invitation.email} created. Send them the link below.")
            form = InvitationForm()
    context = {"form": form, "link": link, "invitations": Invitation.objects.select_related("project")[:100]}
    return render(request, "accounts/invitations.html", context, status=422 if form.errors else 200)


@staff_member_required(login_url="login")
@require_POST
def invitation_revoke_view(request: AuthedRequest, invitation_id: int) -> HttpResponse:
    invitation_revoke(invitation=get_object_or_404(Invitation, pk=invitation_id), actor=request.user)
    messages.success(request, "Invitation revoked.")
    return redirect("invitation-list")


@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = invitation_get_pending(token=token)
    except ValidationError as exc:
        return render(request, "accounts/accept.html", {"problem": " ".join(exc.messages)}, status=404)
    form = InvitationAcceptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(
                token=token, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to Atelier, {user.get_username()}.")
            return redirect("home")
    context = {"form": form, "invitation": invitation}
    return render(request, "accounts/accept.html", context, status=422 if form.errors else 200)
