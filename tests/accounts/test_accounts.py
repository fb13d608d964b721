from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import Invitation
from apps.projects.models import Membership, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_wrong_password_gets_a_clear_message_and_keeps_the_username(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Please enter a correct username and password." in page
    assert 'value="alice"' in page
    assert "_auth_user_id" not in client.session


def test_a_person_logs_in_and_out(client, alice, password):
    response = client.post(reverse("login"), {"username": "alice", "password": password})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)
    client.post(reverse("logout"))
    assert "_auth_user_id" not in client.session


def test_a_person_changes_their_password(client, alice, password):
    client.force_login(alice)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": password,
            "new_password1": "a-new-long-passphrase",
            "new_password2": "a-new-long-passphrase",
        },
    )
    assert response["Location"] == reverse("password_change_done")
    alice.refresh_from_db()
    assert alice.check_password("a-new-long-passphrase")


def test_a_wrong_old_password_is_named_when_changing_it(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("password_change"), {"old_password": "nope", "new_password1": "x", "new_password2": "x"}
    )
    assert "Your old password was entered incorrectly." in response.content.decode()


def test_the_first_admin_is_created_once_and_its_password_printed_once(capsys):
    call_command("ensure_admin")
    first = capsys.readouterr().out
    password = re.search(r"password: (\S+)", first)
    assert password is not None
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password.group(1))
    call_command("ensure_admin")
    second = capsys.readouterr().out
    assert "exists already" in second and password.group(1) not in second


def test_an_admin_invites_a_person_into_a_project(client, alice_project):
    admin = UserFactory(username="root", is_staff=True)
    client.force_login(admin)
    response = client.post(
        reverse("invitation-list"),
        {"email": "carol@example.com", "project": alice_project.pk, "role": "viewer"},
    )
    link = re.search(r'readonly value="([^"]+)"', response.content.decode())
    assert link is not None
    client.logout()

    accept = client.get(link.group(1))
    assert "into the project “Support bot” as viewer" in accept.content.decode()
    response = client.post(
        link.group(1),
        {"username": "carol", "password1": "a-long-passphrase", "password2": "a-long-passphrase"},
    )
    assert response["Location"] == reverse("home")
    carol = get_user_model().objects.get(username="carol")
    assert carol.email == "carol@example.com"
    assert Membership.objects.get(project=alice_project, user=carol).role == Role.VIEWER
    # The link works once.
    client.logout()
    again = client.get(link.group(1))
    assert again.status_code == 404
    assert "This invitation is accepted." in again.content.decode()


def test_accepting_an_invitation_explains_each_bad_input_and_keeps_the_link_usable(client):
    admin = UserFactory(username="root", is_staff=True)
    client.force_login(admin)
    response = client.post(reverse("invitation-list"), {"email": "dan@example.com", "role": "member"})
    link = re.search(r'readonly value="([^"]+)"', response.content.decode())
    assert link is not None
    client.logout()
    response = client.post(
        link.group(1), {"username": "root", "password1": "long-enough-1", "password2": "x"}
    )
    assert "The two passwords differ." in response.content.decode()
    response = client.post(
        link.group(1), {"username": "root", "password1": "long-enough-1", "password2": "long-enough-1"}
    )
    assert "The username “root” is taken" in response.content.decode()
    response = client.post(link.group(1), {"username": "dan", "password1": "123", "password2": "123"})
    assert "This password is too short." in response.content.decode()
    assert Invitation.objects.get().state == "pending"


def test_only_administrators_open_the_invitation_page(client, alice):
    client.force_login(alice)
    response = client.get(reverse("invitation-list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_made_up_invitation_link_says_it_is_not_valid(client):
    response = client.get(reverse("invitation-accept", args=["made-up"]))
    assert response.status_code == 404
    assert "This invitation link is not valid." in response.content.decode()


def test_inviting_an_email_that_has_an_account_says_so(client, alice):
    admin = UserFactory(username="root", is_staff=True)
    client.force_login(admin)
    response = client.post(reverse("invitation-list"), {"email": alice.email, "role": "member"})
    assert response.status_code == 422
    assert "already has an account" in response.content.decode()


def test_a_second_pending_invitation_for_the_same_email_is_refused(client):
    admin = UserFactory(username="root", is_staff=True)
    client.force_login(admin)
    client.post(reverse("invitation-list"), {"email": "erin@example.com", "role": "member"})
    response = client.post(reverse("invitation-list"), {"email": "ERIN@example.com", "role": "member"})
    assert response.status_code == 422
    assert "has a pending invitation already: revoke it to send a new one." in response.content.decode()
    client.post(reverse("invitation-revoke", args=[Invitation.objects.get().pk]))
    assert Invitation.objects.get().state == "revoked"
    response = client.post(reverse("invitation-list"), {"email": "erin@example.com", "role": "member"})
    assert response.status_code == 200
    assert Invitation.objects.count() == 2
