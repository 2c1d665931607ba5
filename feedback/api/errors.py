"""Service errors become 4xx/5xx responses that say what to do."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from feedback.services.errors import FieldError
from feedback.services.runs import QueueUnavailable


def api_exception_handler(exc, context):
    """DRF's handler, plus FieldError → 400 (or its http_status) naming the field (imports: row, field,
    detail), QueueUnavailable → 503 to retry."""
    if isinstance(exc, FieldError):
        return Response(exc.as_dict(), status=exc.http_status)
    if isinstance(exc, QueueUnavailable):
        return Response({"detail": exc.message}, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": "10"})
    return exception_handler(exc, context)
