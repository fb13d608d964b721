from __future__ import annotations

from django.urls import path

from apps.secrets import views

urlpatterns = [
    path("projects/<int:project_id>/settings/", views.project_settings, name="project-settings"),
    path(
        "projects/<int:project_id>/settings/secrets/<int:secret_id>/delete/",
        views.secret_delete,
        name="secret-delete",
    ),
]
