"""View decorators for the studio pages."""
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render


def staff_member_required(view):
    """Staff only. Someone signed in without staff rights gets a 403 page saying so, with a way
    back, instead of the Django admin's login form (which reads as "wrong password")."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            return render(request, "feedback/staff_only.html", status=403)
        return view(request, *args, **kwargs)

    return wrapped
