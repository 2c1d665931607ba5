"""Routes of the serving process (rlhf_site/serve.py): the OpenAI-compatible API only."""
from django.http import JsonResponse
from django.urls import path

from feedback.api.serving import ChatCompletionsView, ModelsView


def healthz(request):
    """Liveness for scripts and load balancers: the process answers."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("v1/models", ModelsView.as_view(), name="serve-models"),
    path("v1/chat/completions", ChatCompletionsView.as_view(), name="serve-chat-completions"),
    path("healthz", healthz, name="serve-healthz"),
]
