from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.projects.models import Membership, Project, Role
from apps.projects.services import membership_add, membership_remove, membership_set_role, project_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_creating_a_project_makes_the_creator_its_owner(alice):
    project = project_create(user=alice, name="  Support   bot ", description="x")
    assert project.name == "Support bot"
    assert Membership.objects.get(project=project, user=alice).role == Role.OWNER


def test_it_rejects_a_duplicate_project_name_of_the_same_user_whatever_the_case(alice, alice_project):
    with pytest.raises(ValidationError) as caught:
        project_create(user=alice, name="SUPPORT BOT")
    assert caught.value.message_dict["name"] == ["You already have a project named “SUPPORT BOT”."]
    assert Project.objects.filter(created_by=alice).count() == 1


def test_two_users_may_each_have_a_project_of_the_same_name(alice_project, bob):
    # A global constraint would tell bob that somebody else has a project called so.
    assert project_create(user=bob, name=alice_project.name).pk != alice_project.pk


def test_it_rejects_a_300_character_project_name(alice):
    with pytest.raises(ValidationError) as caught:
        project_create(user=alice, name="x" * 300)
    assert "at most 100 characters (this one has 300)" in caught.value.message_dict["name"][0]
    assert not Project.objects.exists()


def test_it_rejects_a_blank_project_name(alice):
    with pytest.raises(ValidationError) as caught:
        project_create(user=alice, name="   ")
    assert caught.value.message_dict["name"] == ["Give the project a name."]


def test_an_owner_adds_a_member_by_username(alice, alice_project, bob):
    membership = membership_add(project=alice_project, actor=alice, username="BOB", role=Role.VIEWER)
    assert (membership.user, membership.role) == (bob, Role.VIEWER)


def test_adding_an_unknown_user_says_who_is_missing(alice, alice_project):
    with pytest.raises(ValidationError) as caught:
        membership_add(project=alice_project, actor=alice, username="carol", role=Role.MEMBER)
    assert "No active user is called “carol”" in caught.value.message_dict["username"][0]


def test_adding_somebody_twice_is_refused(alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.MEMBER)
    with pytest.raises(ValidationError, match="already in this project"):
        membership_add(project=alice_project, actor=alice, username="bob", role=Role.MEMBER)


def test_only_owners_change_members(alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.MEMBER)
    UserFactory(username="carol")
    with pytest.raises(PermissionDenied):
        membership_add(project=alice_project, actor=bob, username="carol", role=Role.MEMBER)


def test_the_last_owner_can_be_neither_demoted_nor_removed(alice, alice_project):
    owner = Membership.objects.get(project=alice_project, user=alice)
    with pytest.raises(ValidationError, match="at least one owner"):
        membership_set_role(membership=owner, actor=alice, role=Role.VIEWER)
    with pytest.raises(ValidationError, match="at least one owner"):
        membership_remove(membership=owner, actor=alice)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_an_owner_steps_down_once_another_owner_exists(alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.OWNER)
    owner = Membership.objects.get(project=alice_project, user=alice)
    membership_set_role(membership=owner, actor=alice, role=Role.MEMBER)
    assert Membership.objects.get(project=alice_project, user=alice).role == Role.MEMBER
