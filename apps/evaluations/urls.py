from __future__ import annotations

from django.urls import path

from apps.evaluations import views

urlpatterns = [
    path("projects/<int:project_id>/evaluations/", views.evaluation_list, name="evaluation-list"),
    path(
        "projects/<int:project_id>/evaluations/<int:job_id>/",
        views.evaluation_report,
        name="evaluation-report",
    ),
    path(
        "projects/<int:project_id>/evaluations/<int:job_id>/export.<str:fmt>",
        views.evaluation_export,
        name="evaluation-export",
    ),
]
