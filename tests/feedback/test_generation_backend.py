"""Generation through an OpenAI-compatible server: the project's own /v1, live on loopback, is the server."""
import json
import logging
import shutil
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.signals import request_started
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feedback.models import Checkpoint, Comparison, Job, Project, Sample
from feedback.services.jobs import job_execute
from feedback.services.projects import project_update
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def served(settings, live_server, tiny_models, alice):
    """A tiny project whose generation backend is its own /v1 endpoint, keyed with alice's API token."""
    settings.ROOT_URLCONF = "tests.feedback.urls_web_and_serve"
    project = make_project(tiny_models, name="Support bot", first_batch=0, members=[alice])
    key = Token.objects.create(user=alice).key
    project_update(project=project, data={
        "generation_backend": {"kind": "openai", "base_url": f"{live_server.url}/v1", "model": "Support bot/active",
                               "concurrency": 3, "max_retries": 2, "timeout_s": 60},
        "generation_api_key": key,
    })
    return project, key


@pytest.fixture
def staff_api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


@pytest.fixture
def chat_requests():
    """How many requests reached the live server's /v1/chat/completions."""
    seen = []

    def count(sender, environ, **kwargs):
        if environ.get("PATH_INFO") == "/v1/chat/completions":
            seen.append(1)

    request_started.connect(count)
    yield seen
    request_started.disconnect(count)


def _ask(base_url: str, key: str, messages, seed: int, max_tokens: int) -> str:
    """The server's answer, asked directly (what the batch should have stored)."""
    body = {"model": "Support bot/active", "messages": messages, "max_tokens": max_tokens, "temperature": 1.0,
            "top_p": 1.0, "seed": seed}
    request = urllib.request.Request(f"{base_url}/chat/completions", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"].strip()


def _batch(client, project, **extra) -> Job:
    response = client.post(f"/api/v1/projects/{project.pk}/batches/",
                           {"prompts": 2, "samples_per_prompt": 2, "generation": {"seed": 40}, **extra}, format="json")
    assert response.status_code == 202, response.content
    return job_execute(response.json()["id"])


def test_batch_stores_the_servers_answers_under_its_model_name(served, staff_api, live_server, chat_requests, caplog):
    project, key = served
    caplog.set_level(logging.DEBUG)
    job = _batch(staff_api, project)
    assert job.status == "done", job.error
    assert job.result["comparisons"] == 2 and job.result["backend"]["model"] == "Support bot/active"
    assert len(chat_requests) == 4  # 2 prompts x 2 samples, one request each
    samples = list(Sample.objects.filter(prompt__project=project).order_by("prompt_id", "id"))
    assert len(samples) == 4
    for i, sample in enumerate(samples):
        assert sample.checkpoint is None and sample.model_name == "Support bot/active"
        assert sample.generation_params["base_url"] == f"{live_server.url}/v1"
        assert sample.generation_params["backend"] == "openai"
        # request i was sent seed 40 + i, and the server's answers for a seed are its own
        assert sample.text == _ask(f"{live_server.url}/v1", key, sample.prompt.messages, 40 + i, 8)
        assert 1 <= sample.token_count <= 8
    assert Comparison.objects.filter(project=project).count() == 2
    assert key not in caplog.text and key not in json.dumps(job.params) + json.dumps(job.result)


def test_the_key_is_never_shown_back(served, staff_api, client, admin_user):
    project, key = served
    job = _batch(staff_api, project)
    api = [staff_api.get(f"/api/v1/projects/{project.pk}/"), staff_api.get("/api/v1/projects/"),
           staff_api.get(f"/api/v1/jobs/{job.pk}/"), staff_api.get("/api/v1/schema/")]
    detail = api[0].json()
    assert detail["generation_api_key_set"] is True and "generation_api_key" not in detail
    assert detail["generation_backend"]["model"] == "Support bot/active"
    client.force_login(admin_user)
    pages = [client.get(reverse(name, args=args)) for name, args in [
        ("feedback:studio_project_settings", [project.pk]), ("feedback:studio_project", [project.pk]),
        ("feedback:playground", [project.pk]), ("admin:feedback_project_change", [project.pk])]]
    for response in api + pages:
        assert response.status_code == 200, response
        assert key not in response.content.decode(), response.wsgi_request.path
    assert "Currently set." in pages[0].content.decode()
    # saving the page with the key field left empty keeps the key
    form = pages[0].context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    assert client.post(reverse("feedback:studio_project_settings", args=[project.pk]), data).status_code == 302
    project.refresh_from_db()
    assert project.generation_api_key == key
    staff_api.patch(f"/api/v1/projects/{project.pk}/", {"generation_api_key": ""}, format="json")
    assert staff_api.get(f"/api/v1/projects/{project.pk}/").json()["generation_api_key_set"] is False


def test_a_wrong_key_fails_the_job_naming_url_and_status_without_the_key(served, staff_api, live_server):
    project, _ = served
    project_update(project=project, data={"generation_api_key": "sk-not-the-right-one-4242"})
    job = _batch(staff_api, project)
    assert job.status == "failed"
    assert f"{live_server.url}/v1/chat/completions answered HTTP 401" in job.error
    assert "sk-not-the-right-one-4242" not in job.error + job.traceback
    assert not Sample.objects.filter(prompt__project=project).exists()


def test_a_server_answering_500_is_retried_then_fails_clearly(served, staff_api, live_server, chat_requests, tiny_models,
                                                              tmp_path):
    project, _ = served
    # a checkpoint whose files are gone: the real server fails on it with a 500 every time
    gone = tmp_path / "gone"
    shutil.copytree(tiny_models["policy"], gone)
    broken = Checkpoint.objects.create(project=project, kind="policy", name="broken", path=str(gone), sha256="0" * 64)
    shutil.rmtree(gone)
    project.generation_backend = {**project.generation_backend, "model": str(broken.pk)}
    project.save()
    job = _batch(staff_api, project)
    assert job.status == "failed"
    assert f"generation server {live_server.url}/v1/chat/completions answered HTTP 500" in job.error
    assert "after 3 attempts" in job.error and "the folder is missing" in job.error
    assert len(chat_requests) >= 3  # each failing request was tried 1 + max_retries (2) times
    assert not Comparison.objects.filter(project=project).exists()


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then a chat completion."""

    failures = 2
    hits = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).hits <= self.failures:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "warming up"}}')
            return
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": " hello "},
                                        "finish_reason": "stop"}], "usage": {"completion_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_retries_with_backoff_recover_from_passing_errors():
    from training.config import GenerationConfig
    from training.remote import ServerConfig, ServerError, generate_remote

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1"
        config = ServerConfig(base_url=url, model="m", concurrency=1, max_retries=2, backoff_s=0.01)
        [sample] = generate_remote(config, ["hi"], GenerationConfig(max_new_tokens=4))
        assert (sample.text, sample.token_count, sample.finished, _Flaky.hits) == ("hello", 2, True, 3)
        _Flaky.hits, _Flaky.failures = 0, 10
        with pytest.raises(ServerError, match=r"answered HTTP 503: warming up \(after 3 attempts\)"):
            generate_remote(config, ["hi"], GenerationConfig(max_new_tokens=4))
        assert _Flaky.hits == 3
    finally:
        server.shutdown()


@pytest.mark.parametrize("base_url, expected", [
    ("{live}/nowhere/v1", "{live}/nowhere/v1/chat/completions answered HTTP 404"),
    ("http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/chat/completions could not be reached"),
])
def test_a_wrong_base_url_fails_the_job_clearly(served, staff_api, live_server, base_url, expected):
    project, _ = served
    project.generation_backend = {**project.generation_backend, "base_url": base_url.format(live=live_server.url),
                                  "max_retries": 1}
    project.save()
    job = _batch(staff_api, project)
    assert job.status == "failed" and expected.format(live=live_server.url) in job.error, job.error
    assert not Sample.objects.filter(prompt__project=project).exists()  # and nothing sampled locally instead


def test_the_playground_can_put_the_server_beside_a_checkpoint(served, client, admin_user, live_server):
    project, key = served
    client.force_login(admin_user)
    root = Checkpoint.objects.get(project=project)
    data = {"prompt": "tell me about the cat", "checkpoint_a": 0, "checkpoint_b": root.pk, "max_new_tokens": 6,
            "temperature": 1.0, "top_p": 1.0, "seed": 3}
    response = client.post(reverse("feedback:playground_stream", args=[project.pk]), data)
    assert response.status_code == 200, response.content
    events = [json.loads(line) for chunk in response.streaming_content for line in chunk.decode().splitlines() if line]
    assert not [e for e in events if "error" in e], events
    text_a = "".join(e["text"] for e in events if e.get("side") == "a" and "text" in e)
    assert text_a.strip() == _ask(f"{live_server.url}/v1", key, [{"role": "user", "content": "tell me about the cat"}],
                                  3, 6)
    sent = client.post(reverse("feedback:playground_send", args=[project.pk]), {"pair": events[-1]["pair"]})
    comparison = Comparison.objects.get(pk=sent.json()["comparison"])
    assert comparison.sample_a.model_name == "Support bot/active" and comparison.sample_a.checkpoint is None
    assert comparison.sample_b.checkpoint == root


BAD_SETTINGS = [
    ({"generation_backend": {"kind": "openai", "model": "m"}}, "generation_backend.base_url"),
    ({"generation_backend": {"kind": "openai", "base_url": "ftp://host/v1", "model": "m"}}, "generation_backend.base_url"),
    ({"generation_backend": {"kind": "openai", "base_url": "http://u:pw@host/v1", "model": "m"}},
     "generation_backend.base_url"),
    ({"generation_backend": {"kind": "openai", "base_url": "http://host/v1"}}, "generation_backend.model"),
    ({"generation_backend": {"kind": "openai", "base_url": "http://host/v1", "model": "m", "concurrency": 0}},
     "generation_backend.concurrency"),
    ({"generation_backend": {"kind": "openai", "base_url": "http://host/v1", "model": "m", "timeout_s": "soon"}},
     "generation_backend.timeout_s"),
    ({"generation_backend": {"kind": "vllm"}}, "generation_backend.kind"),
    ({"generation_backend": {"kind": "openai", "api_key": "x"}}, "generation_backend.api_key"),
    ({"generation_api_key": "sk-line\nX-Injected: 1"}, "generation_api_key"),
]


@pytest.mark.parametrize("body, field", BAD_SETTINGS)
def test_bad_backend_settings_are_a_400_naming_the_field_and_change_nothing(staff_api, tiny_models, body, field):
    project = make_project(tiny_models, first_batch=0)
    response = staff_api.patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert "sk-line" not in response.content.decode()
    project.refresh_from_db()
    assert project.generation_backend == {} and project.generation_api_key == ""


def test_the_settings_page_shows_a_bad_url_on_its_field(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client.force_login(admin_user)
    url = reverse("feedback:studio_project_settings", args=[project.pk])
    data = {k: v for k, v in client.get(url).context["form"].initial.items() if v is not None}
    response = client.post(url, {**data, "kind": "openai", "base_url": "gpu-box:8000", "model": "m"})
    assert response.status_code == 200
    assert "http://" in response.context["form"].errors["base_url"][0]
    response = client.post(url, {**data, "kind": "openai", "base_url": "http://gpu-box:8000/v1", "model": "m",
                                 "generation_api_key": "sk-secret-9"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.generation_backend["base_url"] == "http://gpu-box:8000/v1"
    assert project.generation_api_key == "sk-secret-9"
    assert Project.objects.count() == 1
