"""An idempotency key names one vote: a retry gets that vote back, reuse on another comparison is a 409."""
import pytest

from feedback.models import Vote
from tests.feedback.test_api import _client
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_a_key_reused_on_another_comparison_is_refused_and_stores_nothing(tiny_models, alice):
    project = make_project(tiny_models, first_batch=2)
    annotator = _client(alice, token=True)
    first = annotator.get(f"/api/v1/projects/{project.pk}/comparisons/next/").json()
    response = annotator.post(f"/api/v1/comparisons/{first['comparison_id']}/votes/",
                              {"choice": "a", "idempotency_key": "k1"}, format="json")
    assert response.status_code == 201
    stored = response.json()["stored_choice"]  # "a" as shown, in the comparison's own A/B terms

    second = annotator.get(f"/api/v1/projects/{project.pk}/comparisons/next/").json()
    assert second["comparison_id"] != first["comparison_id"]
    response = annotator.post(f"/api/v1/comparisons/{second['comparison_id']}/votes/",
                              {"choice": "b", "idempotency_key": "k1"}, format="json")
    assert response.status_code == 409
    assert "idempotency_key" in response.json()
    assert str(first["comparison_id"]) in response.json()["idempotency_key"]
    assert list(Vote.objects.filter(annotator=alice).values_list("comparison_id", "choice")) == [
        (first["comparison_id"], stored)]

    # the retry of the first vote still answers with it, and a fresh key stores the second
    again = annotator.post(f"/api/v1/comparisons/{first['comparison_id']}/votes/",
                           {"choice": "a", "idempotency_key": "k1"}, format="json")
    assert again.status_code == 200
    fresh = annotator.post(f"/api/v1/comparisons/{second['comparison_id']}/votes/",
                           {"choice": "b", "idempotency_key": "k2"}, format="json")
    assert fresh.status_code == 201 and Vote.objects.filter(annotator=alice).count() == 2
