"""Login throttling (django-axes): after ATELIER_LOGIN_FAILURE_LIMIT wrong passwords for one username
from one address, that pair is refused with a clear message, even with the right password, until the
cool-off ends or an administrator unlocks it; another address, or another username, still logs in."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def test_ten_wrong_passwords_lock_that_username_and_address_even_for_the_right_password(
    client, alice, bob, password
):
    for _ in range(9):
        assert (
            "Please enter a correct username and password"
            in _login(client, "alice", "wrong").content.decode()
        )
    locked = _login(client, "alice", "wrong")
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    right = _login(client, "alice", password)
    assert (
        right.status_code == 429
        and "even with the right password, for the next 15 minutes" in right.content.decode()
    )
    assert "_auth_user_id" not in client.session
    assert _login(client, "alice", password, address="10.0.0.2").status_code == 302  # another address
    client.logout()
    assert _login(client, "bob", password).status_code == 302  # another username from the same address


def test_an_administrator_unlocks_an_account_with_axes_reset_username(client, alice, password):
    for _ in range(10):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", password).status_code == 429
    call_command("axes_reset_username", "alice")
    assert _login(client, "alice", password).status_code == 302


def test_a_success_forgets_the_earlier_failures(client, alice, password):
    for _ in range(9):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", password).status_code == 302
    client.logout()
    for _ in range(9):
        _login(client, "alice", "wrong")
    assert _login(client, "alice", password).status_code == 302
