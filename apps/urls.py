from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from apps.core import mlflow_proxy

admin.site.site_header = "Atelier administration"
handler403 = "apps.core.views.permission_denied"

urlpatterns = [
    path("accounts/", include("apps.accounts.urls")),
    path("admin/", admin.site.urls),
    # MLflow's UI and API, behind the login and scoped to the user's projects (apps/core/mlflow_proxy.py).
    re_path(r"^mlflow/(?P<path>.*)$", mlflow_proxy.proxy, name="mlflow"),
    path("", include("apps.core.urls")),
    path("", include("apps.jobs.urls")),  # before projects' catch-all section placeholder
    path("", include("apps.evaluations.urls")),
    path("", include("apps.endpoints.urls")),
    path("", include("apps.synthetic.urls")),
    path("", include("apps.datasets.urls")),
    path("", include("apps.secrets.urls")),
    path("", include("apps.projects.urls")),
]
