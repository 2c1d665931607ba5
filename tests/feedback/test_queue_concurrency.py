"""20 annotators drain 200 comparisons with overlap 3 at the same time: exactly 600 votes."""
import pytest
from django.db import connection

from feedback.models import Comparison, Vote
from tests.helpers import queue_drained_at_once, queue_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-lock concurrency is exercised on PostgreSQL (set DATABASE_URL)")
def test_twenty_annotators_drain_the_queue_exactly(django_user_model):
    project = queue_project(200, overlap=3)
    users = [django_user_model.objects.create_user(username=f"annotator{i}", password="x") for i in range(20)]
    errors = queue_drained_at_once(project, users)
    assert errors == []
    assert Vote.objects.filter(comparison__project=project).count() == 600
    per_comparison = Vote.objects.values("comparison").annotate(n=__import__("django").db.models.Count("id"))
    assert {row["n"] for row in per_comparison} == {3}
    pairs = Vote.objects.values_list("comparison", "annotator")
    assert len(set(pairs)) == len(pairs)
    assert not Comparison.objects.filter(project=project, status="open").exists()
