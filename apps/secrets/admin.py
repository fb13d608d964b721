from __future__ import annotations

from django.contrib import admin

from apps.secrets.models import ProjectSecret


@admin.register(ProjectSecret)
class ProjectSecretAdmin(admin.ModelAdmin):
    # The encrypted value stays out of the admin too.
    list_display = ("name", "project", "created_by", "created_at", "last_used_at")
    fields = ("name", "project", "created_by", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request: object) -> bool:
        return False
