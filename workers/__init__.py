"""The Celery side of Atelier. `celery -A workers worker` finds the app here."""

from workers.celery import app

__all__ = ["app"]
