"""Service errors become 400 responses naming the field (and the row, for imports)."""
from rest_framework.response import Response
from rest_framework.views import exception_handler

from feedback.services.errors import FieldError


def api_exception_handler(exc, context):
    """DRF's handler, plus FieldError → 400 (or its http_status) with {field: reason} (imports: row, field, detail)."""
    if isinstance(exc, FieldError):
        return Response(exc.as_dict(), status=exc.http_status)
    return exception_handler(exc, context)
