from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("invitations/", views.invitation_list, name="invitation-list"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view, name="invitation-revoke"),
    path("invitations/accept/<str:token>/", views.invitation_accept_view, name="invitation-accept"),
]
