from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Atelier administration"

urlpatterns = [
    path("accounts/", include("apps.accounts.urls")),
    path("admin/", admin.site.urls),
    path("", include("apps.core.urls")),
    path("", include("apps.jobs.urls")),  # before projects' catch-all section placeholder
    path("", include("apps.evaluations.urls")),
    path("", include("apps.endpoints.urls")),
    path("", include("apps.synthetic.urls")),
    path("", include("apps.secrets.urls")),
    path("", include("apps.projects.urls")),
]
