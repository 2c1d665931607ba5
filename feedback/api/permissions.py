"""Who may call what: annotators work the queue, staff run the project."""
from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Staff only: imports, exports, rounds, checkpoints, project changes."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
