"""The annotator's hot path has a fixed number of SQL queries per request.

Every query is a round trip on each fetch and each vote, for every annotator: these
numbers were brought down on purpose (bench/profile_requests.py shows the queries and
their time). A new query fails here; if it is worth its round trip, raise the number
and say why in the commit.
"""
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from feedback.models import Assignment, Vote
from feedback.services.projects import comparisons_import
from tests.helpers import make_project

pytestmark = pytest.mark.django_db

# Inside a test every transaction is a savepoint (SAVEPOINT/RELEASE are counted). The
# cache is in memory here, so the counts do not depend on where the throttles count: the
# default install's database cache adds 6 queries to the API vote, Redis none.
QUERIES = {
    "page fetch, first visit": 20,
    "page reload, same item": 9,
    "page vote": 13,
    "page fetch after a vote": 21,
    "API fetch": 11,
    "API vote": 9,
}


@pytest.fixture(autouse=True)
def cache_in_memory(settings, fresh_cache):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "KEY_PREFIX": fresh_cache}}


@pytest.fixture
def project(tiny_models, alice):
    project = make_project(tiny_models, first_batch=0, overlap=2)
    comparisons_import(project=project, rows=[
        {"prompt": f"question {i}", "response_a": f"answer {i} A", "response_b": f"answer {i} B"} for i in range(4)])
    return project


def _count(label: str, send):
    with CaptureQueriesContext(connection) as captured:
        response = send()
    listing = "\n".join(f"  {q['sql'][:160]}" for q in captured.captured_queries)
    assert len(captured) == QUERIES[label], f"{label}: {len(captured)} queries, pinned at {QUERIES[label]}:\n{listing}"
    return response


def test_the_annotate_page_fetch_and_vote_keep_their_query_counts(project, alice):
    client = Client()
    client.force_login(alice)
    url = f"/annotate/?project={project.pk}"
    response = _count("page fetch, first visit", lambda: client.get(url))
    assert response.status_code == 200
    assignment = Assignment.objects.get(annotator=alice, status=Assignment.Status.RESERVED)
    assert _count("page reload, same item", lambda: client.get(url)).context["assignment"] == assignment

    response = _count("page vote", lambda: client.post(f"/annotate/{assignment.pk}/vote/", {"side": "left"}))
    assert response.status_code == 302 and Vote.objects.filter(annotator=alice).count() == 1
    response = _count("page fetch after a vote", lambda: client.get(url))
    assert response.status_code == 200 and b"Saved." in response.content
    assert response.context["assignment"].comparison_id != assignment.comparison_id


def test_the_api_fetch_and_vote_keep_their_query_counts(project, alice):
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    for _ in range(2):  # the second round trip runs with a vote already stored
        item = _count("API fetch", lambda: client.get(f"/api/v1/projects/{project.pk}/comparisons/next/")).json()
        response = _count("API vote", lambda: client.post(
            f"/api/v1/comparisons/{item['comparison_id']}/votes/", {"choice": "a"}, content_type="application/json"))
        assert response.status_code == 201
    assert Vote.objects.filter(annotator=alice).count() == 2
