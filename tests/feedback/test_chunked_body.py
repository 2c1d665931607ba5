"""A body sent with Transfer-Encoding: chunked (no Content-Length) is read, or refused with a 411 saying why."""
import http.client
import io
import json
import socket
from urllib.parse import urlparse

import pytest
from django.test.client import ClientHandler
from rest_framework.authtoken.models import Token

from feedback.models import Project, Prompt


def _call_wsgi(environ: dict) -> tuple[int, bytes]:
    """The test client's handler (WSGIRequest and every middleware) with our own environ."""
    response = ClientHandler()(environ)
    return response.status_code, response.content


def _environ(path: str, token: str, body: bytes, **extra) -> dict:
    """What gunicorn hands the app for a chunked request: decoded body, no CONTENT_LENGTH."""
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "HTTP_HOST": "localhost", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json", "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_AUTHORIZATION": f"Token {token}", **extra,
    }


@pytest.mark.django_db
def test_a_chunked_json_body_is_read_under_gunicorn(admin_user):
    project = Project.objects.create(name="Chunked")
    token = Token.objects.create(user=admin_user).key
    body = json.dumps(["first prompt", "second prompt"]).encode()
    code, content = _call_wsgi(_environ(f"/api/v1/projects/{project.pk}/prompts/import/", token, body,
                                        **{"wsgi.input_terminated": True}))
    assert code == 201, content
    assert json.loads(content) == {"imported": 2}
    assert sorted(Prompt.objects.values_list("messages__0__content", flat=True)) == ["first prompt", "second prompt"]


@pytest.mark.django_db
def test_a_chunked_body_over_the_upload_limit_is_a_413(admin_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    project = Project.objects.create(name="Chunked")
    token = Token.objects.create(user=admin_user).key
    code, content = _call_wsgi(_environ(f"/api/v1/projects/{project.pk}/prompts/import/", token,
                                        json.dumps(["x" * 200]).encode(), **{"wsgi.input_terminated": True}))
    assert code == 413 and b"limit" in content
    assert not Prompt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_server_that_cannot_decode_chunks_answers_411(live_server, django_user_model):
    """Django's own server (runserver, the live test server) passes chunks undecoded."""
    staff = django_user_model.objects.create_user(username="root", password="pw", is_staff=True)
    project = Project.objects.create(name="Chunked")
    token = Token.objects.create(user=staff).key
    url = urlparse(live_server.url)
    body = json.dumps(["a prompt"]).encode()
    request = (f"POST /api/v1/projects/{project.pk}/prompts/import/ HTTP/1.1\r\nHost: {url.netloc}\r\n"
               f"Content-Type: application/json\r\nAuthorization: Token {token}\r\n"
               "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    request += f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    # One write, then read: the server may answer before it has read the chunks.
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        content = response.read()
    assert response.status == 411, content
    assert b"Content-Length" in content
    assert not Prompt.objects.exists()
