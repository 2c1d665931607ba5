"""`/v1/chat/completions` and `/v1/models`, shaped as the OpenAI API answers them.

Served by the serving process (rlhf_site/serve.py), not the web process: generation holds
CPU cores for seconds, and annotation pages must not wait behind it. Clients send the
project's API token as `Authorization: Bearer <key>`; every error has OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, so the official clients raise the
matching exception (AuthenticationError, NotFoundError, BadRequestError, RateLimitError).
"""
from django.http import StreamingHttpResponse
from rest_framework import exceptions, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from feedback.selectors.serving import UnknownModel, serving_checkpoint, serving_models
from feedback.services.checkpoints import CheckpointMismatch
from feedback.services.errors import FieldError
from feedback.services.serving import chat_completion, chat_completion_stream, chat_params


class BearerTokenAuthentication(TokenAuthentication):
    """DRF's token, sent the way OpenAI clients send keys: `Authorization: Bearer <key>`."""

    keyword = "Bearer"


def openai_error(message: str, *, status_code: int, type_: str, param: str | None = None,
                 code: str | None = None, headers: dict | None = None) -> Response:
    """An error response in the OpenAI shape."""
    return Response({"error": {"message": message, "type": type_, "param": param, "code": code}},
                    status=status_code, headers=headers)


class OpenAIView(APIView):
    """Token auth by Bearer key, the `serve` throttle, and errors in OpenAI's shape."""

    authentication_classes = [BearerTokenAuthentication]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "serve"

    def handle_exception(self, exc):
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            return openai_error(
                "Incorrect API key provided. Send a project API token as 'Authorization: Bearer <key>' "
                "(manage.py api_token USERNAME prints one).",
                status_code=401, type_="invalid_request_error", code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"})
        if isinstance(exc, exceptions.Throttled):
            wait = int(exc.wait or 1)
            return openai_error(f"Rate limit reached; retry in {wait} s.", status_code=429,
                                type_="rate_limit_exceeded", code="rate_limit_exceeded",
                                headers={"Retry-After": str(wait)})
        if isinstance(exc, CheckpointMismatch):
            # the server's own files are missing or changed: not the caller's fault (5xx, so clients retry)
            return openai_error(f"{exc.field}: {exc.message}", status_code=500, type_="server_error")
        if isinstance(exc, FieldError):
            return openai_error(f"{exc.field}: {exc.message}", status_code=400, type_="invalid_request_error",
                                param=exc.field)
        if isinstance(exc, UnknownModel):
            return openai_error(f"The model '{exc.args[0]}' does not exist or you do not have access to it. "
                                "Use <project>/active, <project>/round-N or a checkpoint id (GET /v1/models).",
                                status_code=404, type_="invalid_request_error", param="model",
                                code="model_not_found")
        if isinstance(exc, exceptions.ParseError):
            return openai_error(f"body: {exc.detail}", status_code=400, type_="invalid_request_error",
                                param="body")
        if isinstance(exc, exceptions.APIException):
            return openai_error(str(exc.detail), status_code=exc.status_code, type_="invalid_request_error")
        return super().handle_exception(exc)


class ModelsView(OpenAIView):
    """`GET /v1/models`: every checkpoint name the caller may use."""

    def get(self, request):
        data = [{"id": m["id"], "object": "model", "created": int(m["checkpoint"].created_at.timestamp()),
                 "owned_by": m["project"].name} for m in serving_models(request.user)]
        return Response({"object": "list", "data": data})


class ChatCompletionsView(OpenAIView):
    """`POST /v1/chat/completions`: a completion, or with `stream` server-sent chunks."""

    def post(self, request):
        params = chat_params(request.data)
        checkpoint = serving_checkpoint(request.user, params["model"])
        if params["stream"]:
            response = StreamingHttpResponse(chat_completion_stream(checkpoint=checkpoint, params=params),
                                             content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # a proxy in front must pass chunks on as they come
            return response
        return Response(chat_completion(checkpoint=checkpoint, params=params), status=status.HTTP_200_OK)
