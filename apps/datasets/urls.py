from __future__ import annotations

from django.urls import path

from apps.datasets import views

urlpatterns = [
    path("projects/<int:project_id>/datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path(
        "projects/<int:project_id>/datasets/<int:dataset_id>/rows/", views.dataset_rows, name="dataset-rows"
    ),
    path(
        "projects/<int:project_id>/datasets/<int:dataset_id>/download/",
        views.dataset_download,
        name="dataset-download",
    ),
    path(
        "projects/<int:project_id>/datasets/<int:dataset_id>/delete/",
        views.dataset_delete,
        name="dataset-delete",
    ),
]
