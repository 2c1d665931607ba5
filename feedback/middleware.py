"""HTTP hardening that Django does not ship: a Content-Security-Policy header, chunked bodies."""
import io

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse


class ContentSecurityPolicyMiddleware:
    """Adds settings.CONTENT_SECURITY_POLICY to every response that has none.

    With `script-src 'self'` a script injected into model output or a prompt cannot run
    even if sanitizing ever missed it: every script of ours is a static file.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class ChunkedBodyMiddleware:
    """Reads a request body sent with `Transfer-Encoding: chunked` (no Content-Length).

    Django sizes the body by Content-Length, so without one it reads nothing and a JSON
    body looks empty ("is not JSON"). Under gunicorn, which decodes the chunks and marks
    the stream as ending (`wsgi.input_terminated`), the body is read here, up to the
    upload limit, and handed on with its length. A server that does not decode chunks
    (Django's runserver) gets a 411 that says to send Content-Length instead.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        environ = request.META
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            refused = self._read(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _read(self, request):
        """Replace the empty body stream with the decoded body; a response when refused."""
        environ = request.META
        if not environ.get("wsgi.input_terminated"):
            return JsonResponse(
                {"body": "chunked request bodies cannot be read by this server; send Content-Length"}, status=411)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            from feedback.api.parsing import too_big_message

            return JsonResponse({"body": too_big_message()}, status=413)
        environ["CONTENT_LENGTH"] = str(len(body))
        request._stream = LimitedStream(io.BytesIO(body), len(body))
        return None
