"""The worker side of Atelier: the Celery app (workers.celery, which `celery -A workers` finds by
itself), its tasks, and the training layer (workers.training), which never imports Django. This package
must stay import-free so that importing workers.training does not start Celery or Django."""
