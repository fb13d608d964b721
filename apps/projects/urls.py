from __future__ import annotations

from django.urls import path

from apps.projects import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/", views.project_list, name="project-list"),
    path("projects/<int:project_id>/", views.project_dashboard, name="project-dashboard"),
    path("projects/<int:project_id>/members/", views.project_members, name="project-members"),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/role/",
        views.project_member_role,
        name="project-member-role",
    ),
    path(
        "projects/<int:project_id>/members/<int:membership_id>/remove/",
        views.project_member_remove,
        name="project-member-remove",
    ),
    path("api/projects/", views.api_project_list, name="api-project-list"),
    path("api/projects/<int:project_id>/", views.api_project_detail, name="api-project-detail"),
]
