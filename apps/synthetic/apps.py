from __future__ import annotations

from django.apps import AppConfig


class SyntheticConfig(AppConfig):
    name = "apps.synthetic"
    label = "synthetic"
