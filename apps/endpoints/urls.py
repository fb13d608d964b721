from __future__ import annotations

from django.urls import path, re_path

from apps.endpoints import gateway, views

urlpatterns = [
    # The OpenAI-compatible gateway (bearer API keys, no session, no CSRF).
    path("v1/models", gateway.models, name="gateway-models"),
    path("v1/chat/completions", gateway.chat_completions, name="gateway-chat"),
    path("v1/completions", gateway.completions, name="gateway-completions"),
    re_path(r"^v1/(?P<rest>.*)$", gateway.not_found),
    # Pages.
    path("projects/<int:project_id>/endpoints/", views.endpoint_list, name="endpoint-list"),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/",
        views.endpoint_detail,
        name="endpoint-detail",
    ),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/chat/",
        views.playground_chat,
        name="endpoint-chat",
    ),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/export/<str:what>.zip",
        views.endpoint_export,
        name="endpoint-export",
    ),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/merge/",
        views.endpoint_merge,
        name="endpoint-merge",
    ),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/push/",
        views.endpoint_push,
        name="endpoint-push",
    ),
    path(
        "projects/<int:project_id>/endpoints/<int:endpoint_id>/<str:action>/",
        views.endpoint_action,
        name="endpoint-action",
    ),
    path(
        "projects/<int:project_id>/endpoints/deploy/job/<int:job_id>/",
        views.endpoint_deploy_job,
        name="job-deploy",
    ),
    path("projects/<int:project_id>/models/", views.model_catalog, name="model-catalog"),
    path("projects/<int:project_id>/models/deploy/", views.endpoint_deploy_model, name="model-deploy"),
    path(
        "projects/<int:project_id>/models/deploy/builtin/<str:variant>/",
        views.builtin_deploy,
        name="builtin-deploy",
    ),
    path("projects/<int:project_id>/playground/", views.playground, name="playground"),
    path("projects/<int:project_id>/keys/", views.api_key_new, name="api-key-new"),
    path(
        "projects/<int:project_id>/keys/<int:key_id>/revoke/",
        views.api_key_revoke_view,
        name="api-key-revoke",
    ),
]
