from __future__ import annotations

from django.urls import path

from apps.core import views

urlpatterns = [
    path("health/", views.health, name="health"),
    path("health/states/", views.health_states, name="health-states"),
    path("health/ping/", views.health_ping_send, name="health-ping"),
    path("health/ping/<int:ping_id>/", views.health_ping_detail, name="health-ping-detail"),
    path("healthz", views.healthz, name="healthz"),
]
