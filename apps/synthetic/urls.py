from __future__ import annotations

from django.urls import path

from apps.synthetic import views

urlpatterns = [
    path("projects/<int:project_id>/datasets/", views.dataset_list, name="dataset-list"),
    path("projects/<int:project_id>/datasets/generate/", views.generation_new, name="generation-new"),
    path(
        "projects/<int:project_id>/generations/<int:job_id>/",
        views.generation_detail,
        name="generation-detail",
    ),
    path(
        "projects/<int:project_id>/generations/<int:job_id>/rows/",
        views.generation_rows,
        name="generation-rows",
    ),
    path(
        "projects/<int:project_id>/generations/<int:job_id>/rows/<int:row_id>/",
        views.generation_row_edit,
        name="generation-row-edit",
    ),
    path(
        "projects/<int:project_id>/generations/<int:job_id>/save/",
        views.generation_save,
        name="generation-save",
    ),
]
