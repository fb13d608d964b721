from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.projects.models import Membership, Project, Role
from apps.projects.services import membership_add, project_create

pytestmark = pytest.mark.django_db


def _urls_of(project: Project) -> list[str]:
    owner = Membership.objects.filter(project=project, role=Role.OWNER).first()
    assert owner is not None
    return [
        reverse("project-dashboard", args=[project.pk]),
        reverse("project-members", args=[project.pk]),
        reverse("dataset-list", args=[project.pk]),
        reverse("job-list", args=[project.pk]),
        reverse("wizard-start", args=[project.pk]),
        *[reverse(f"wizard-{step}", args=[project.pk]) for step in ("model", "data", "technique", "review")],
        reverse("api-job-list", args=[project.pk]),
        reverse("model-catalog", args=[project.pk]),
        reverse("endpoint-list", args=[project.pk]),
        reverse("playground", args=[project.pk]),
    ]


def test_anonymous_visitors_are_sent_to_the_login_page(client, alice_project):
    response = client.get(reverse("project-dashboard", args=[alice_project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("api-project-list")).status_code == 401


def test_a_second_user_can_neither_see_nor_open_the_first_users_project(client, alice_project, bob):
    client.force_login(bob)
    for url in _urls_of(alice_project):
        assert client.get(url).status_code == 404, url
    assert client.get(reverse("api-project-detail", args=[alice_project.pk])).status_code == 404
    assert client.get(reverse("api-project-list")).json() == {"projects": []}
    listing = client.get(reverse("project-list"))
    assert alice_project.name not in listing.content.decode()
    # Not through a membership id of the other project either.
    alice_membership = Membership.objects.get(project=alice_project)
    bobs = project_create(user=bob, name="Bob's")
    for name in ("project-member-role", "project-member-remove"):
        url = reverse(name, args=[bobs.pk, alice_membership.pk])
        assert client.post(url, {"role": "viewer"}).status_code == 404
        url = reverse(name, args=[alice_project.pk, alice_membership.pk])
        assert client.post(url, {"role": "viewer"}).status_code == 404
    alice_membership.refresh_from_db()
    assert alice_membership.role == Role.OWNER


def test_an_unknown_project_id_is_a_404_in_the_ui_and_the_api(client, alice):
    client.force_login(alice)
    response = client.get("/projects/999999/")
    assert response.status_code == 404
    assert "belongs to a project you are not a member of" in response.content.decode()
    response = client.get("/api/projects/999999/")
    assert (response.status_code, response.json()) == (404, {"error": "No such project."})


def test_the_project_api_lists_the_users_projects_with_their_roles(client, alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    assert client.get("/api/projects/").json()["projects"][0] | {"created_at": None} == {
        "id": alice_project.pk,
        "name": "Support bot",
        "description": "Answers tickets.",
        "role": "viewer",
        "created_at": None,
    }
    detail = client.get(f"/api/projects/{alice_project.pk}/").json()
    assert detail["members"] == [
        {"username": "alice", "role": "owner"},
        {"username": "bob", "role": "viewer"},
    ]


def test_creating_a_project_leads_to_its_dashboard(client, alice):
    client.force_login(alice)
    response = client.post(reverse("project-list"), {"name": "Legal summaries"}, follow=True)
    project = Project.objects.get(name="Legal summaries")
    assert response.redirect_chain[-1][0] == reverse("project-dashboard", args=[project.pk])
    assert "Project “Legal summaries” created." in response.content.decode()


def test_a_300_character_project_name_gets_a_message_beside_the_field(client, alice):
    client.force_login(alice)
    response = client.post(reverse("project-list"), {"name": "n" * 300, "description": "kept"})
    assert response.status_code == 422
    page = response.content.decode()
    assert "A project name has at most 100 characters (this one has 300)." in page
    assert "kept</textarea>" in page  # what was typed is not lost
    assert not Project.objects.exists()


def test_a_duplicated_project_name_gets_a_message_in_the_htmx_fragment(client, alice, alice_project):
    client.force_login(alice)
    response = client.post(reverse("project-list"), {"name": "support bot"}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    fragment = response.content.decode()
    assert "You already have a project named “support bot”." in fragment
    assert "<html" not in fragment  # only the form, swapped in place


def test_home_opens_the_last_project_visited(client, alice, alice_project):
    other = project_create(user=alice, name="Other")
    client.force_login(alice)
    client.get(reverse("project-dashboard", args=[other.pk]))
    assert client.get("/")["Location"] == reverse("project-dashboard", args=[other.pk])


def test_home_without_projects_offers_to_create_one(client, alice):
    client.force_login(alice)
    response = client.get("/", follow=True)
    assert "You are in no project yet" in response.content.decode()


def test_the_header_switcher_lists_every_project_of_the_user(client, alice, alice_project):
    project_create(user=alice, name="Second")
    client.force_login(alice)
    page = client.get(reverse("project-dashboard", args=[alice_project.pk])).content.decode()
    switcher = page.split('data-testid="project-switcher"')[1].split("</details>")[0]
    assert "Support bot" in switcher and "Second" in switcher


def test_an_unknown_section_is_a_404(client, alice, alice_project):
    client.force_login(alice)
    assert client.get(f"/projects/{alice_project.pk}/nonsense/").status_code == 404


def test_a_viewer_sees_members_but_cannot_add_any(client, alice, alice_project, bob):
    membership_add(project=alice_project, actor=alice, username="bob", role=Role.VIEWER)
    client.force_login(bob)
    url = reverse("project-members", args=[alice_project.pk])
    assert "Add a member" not in client.get(url).content.decode()
    response = client.post(url, {"username": "alice", "role": "owner"})
    assert response.status_code == 403
    assert "Only the project&#x27;s owners can add members." in response.content.decode()


def test_an_owner_adds_a_member_and_sees_a_clear_error_for_an_unknown_user(client, alice, alice_project, bob):
    client.force_login(alice)
    url = reverse("project-members", args=[alice_project.pk])
    response = client.post(url, {"username": "nobody", "role": "member"})
    assert response.status_code == 422
    assert "No active user is called “nobody”" in response.content.decode()
    response = client.post(url, {"username": "bob", "role": "member"}, follow=True)
    assert "bob joined as member." in response.content.decode()


def test_demoting_the_last_owner_shows_why_it_was_refused(client, alice, alice_project):
    client.force_login(alice)
    owner = Membership.objects.get(project=alice_project, user=alice)
    url = reverse("project-member-role", args=[alice_project.pk, owner.pk])
    response = client.post(url, {"role": "viewer"}, follow=True)
    assert "A project needs at least one owner" in response.content.decode()


def test_a_form_without_its_csrf_token_is_refused_with_a_clear_message(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("project-list"), {"name": "Sneaky"})
    assert response.status_code == 403
    assert "sent without its security token" in response.content.decode()
    assert not Project.objects.filter(name="Sneaky").exists()
