from __future__ import annotations

from django.contrib import admin

from apps.accounts.models import Invitation


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "project", "role", "invited_by", "created_at", "state"]
    readonly_fields = ["token_hash"]
