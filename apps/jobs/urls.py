from __future__ import annotations

from django.urls import path

from apps.jobs import views

urlpatterns = [
    path("projects/<int:project_id>/jobs/", views.job_list, name="job-list"),
    path("projects/<int:project_id>/jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("projects/<int:project_id>/jobs/<int:job_id>/metrics.json", views.job_metrics, name="job-metrics"),
    path(
        "projects/<int:project_id>/jobs/<int:job_id>/<str:action>/",
        views.job_action,
        name="job-action",
    ),
    path("projects/<int:project_id>/customize/", views.wizard_start, name="wizard-start"),
    path("projects/<int:project_id>/customize/model/", views.wizard_model, name="wizard-model"),
    path("projects/<int:project_id>/customize/data/", views.wizard_data, name="wizard-data"),
    path("projects/<int:project_id>/customize/technique/", views.wizard_technique, name="wizard-technique"),
    path("projects/<int:project_id>/customize/review/", views.wizard_review, name="wizard-review"),
    path("projects/<int:project_id>/customize/try/", views.wizard_try, name="wizard-try"),
    path("projects/<int:project_id>/customize/reset/", views.wizard_reset, name="wizard-reset"),
    path("api/projects/<int:project_id>/jobs/", views.api_job_list, name="api-job-list"),
    path("api/projects/<int:project_id>/jobs/<int:job_id>/", views.api_job_detail, name="api-job-detail"),
]
