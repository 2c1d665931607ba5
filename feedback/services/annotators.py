"""Annotator accounts made from the studio: no email, the password and API token shown once."""
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from feedback.models import Project
from feedback.services.errors import FieldError
from feedback.services.projects import membership_add


class AnnotatorError(FieldError):
    """An annotator account that cannot be created or changed."""


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def _token_rotate(user: AbstractUser) -> str:
    """A fresh API token; the old one (if any) stops working, as `manage.py api_token --rotate` does."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key


def annotator_create(*, username: str, projects: list[Project] = ()) -> tuple[AbstractUser, str, str]:
    """A new non-staff user with a generated password and API token, member of `projects`.

    Returns (user, password, token); neither secret is stored in the clear, so the caller
    shows them once.
    """
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise AnnotatorError("username", "is required")
    field = User._meta.get_field(User.USERNAME_FIELD)
    if len(username) > field.max_length:
        raise AnnotatorError("username", f"is longer than {field.max_length} characters")
    try:
        User.username_validator(username)
    except Exception:  # django.core.exceptions.ValidationError; its message is about letters and @.+-_
        raise AnnotatorError("username", "may contain only letters, digits and @ . + - _") from None
    if User.objects.filter(username__iexact=username).exists():
        raise AnnotatorError("username", "is taken")
    password = _new_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password, is_staff=False)
        for project in projects:
            membership_add(project=project, user=user)
        token = _token_rotate(user)
    return user, password, token


def annotator_password_reset(*, user: AbstractUser) -> tuple[str, str]:
    """A new generated password and a new API token for an annotator (the old ones stop working).

    Staff accounts are changed in the Django admin, not here.
    """
    if user.is_staff:
        raise AnnotatorError("user", "is staff; change staff passwords in the admin")
    password = _new_password()
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        token = _token_rotate(user)
    return password, token
