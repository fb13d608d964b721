"""The Celery app. Every setting comes from Django's settings (CELERY_*), which read the environment."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")

# DjangoTask gives tasks delay_on_commit(); ids go in, never objects (STYLE.md).
app = Celery("atelier", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ["workers.tasks"]
