"""Top-level URL routes."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from feedback.auth_forms import AdminLoginForm, LoginForm

# Both login pages count failed logins per account and address (feedback/services/logins.py).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(("feedback.api.urls", "api"), namespace="api")),
    path("", include("feedback.urls")),
]
