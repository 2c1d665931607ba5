"""Login forms that refuse an account or address after too many failed logins."""
from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from feedback.services.logins import login_failure_record, login_retry_after


def client_address(request) -> str:
    """The peer's address. X-Forwarded-For is not trusted: any client can write it."""
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


class ThrottledLoginMixin:
    """Checks the failure limits before the password, and counts every failure."""

    def clean(self):
        username = self.data.get("username", "")
        address = client_address(self.request)
        wait = login_retry_after(username=username, address=address)
        if wait:
            raise forms.ValidationError(
                "Too many failed logins for this account or from this address. "
                f"Try again in {max(1, round(wait / 60))} minute(s).",
                code="too_many_failures",
            )
        try:
            return super().clean()
        except forms.ValidationError as exc:
            if getattr(exc, "code", None) == "invalid_login":
                login_failure_record(username=username, address=address)
            raise


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """The form of /accounts/login/."""


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The form of /admin/login/."""
