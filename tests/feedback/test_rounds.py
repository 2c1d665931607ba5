"""Round configuration, failures that explain themselves, and preference snapshots."""
import pytest

from feedback.models import TrainingRound
from feedback.services.assignment import assignment_next
from feedback.services.exports import preference_snapshot
from feedback.services.rounds import RoundError, round_execute, round_launch
from feedback.services.votes import vote_submit
from tests.helpers import make_project, this_cpu

pytestmark = pytest.mark.django_db


def test_unknown_or_bad_settings_name_the_field(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    with pytest.raises(RoundError) as err:
        round_launch(project=project, config={"ppo": {"steps": 0}})
    assert err.value.field == "ppo.steps"
    with pytest.raises(RoundError) as err:
        round_launch(project=project, config={"ppo": {"stepz": 3}})
    assert err.value.field == "ppo.stepz"
    with pytest.raises(RoundError) as err:
        round_launch(project=project, config={"learning_rate": 3})
    assert err.value.field == "learning_rate"
    assert not TrainingRound.objects.exists()


def test_round_config_says_how_votes_were_aggregated(tiny_models, django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=0)
    with django_capture_on_commit_callbacks(execute=False):
        r = round_launch(project=project)
    assert r.config["aggregation"].startswith("majority") and "agreement" in r.config["aggregation"]


def test_round_without_enough_votes_fails_with_a_reason(tiny_models, django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=1)
    with django_capture_on_commit_callbacks(execute=False):
        r = round_launch(project=project, config={"min_pairs": 3})
    done = round_execute(r.pk)
    assert done.status == "failed"
    assert "only 0 preference pair(s)" in done.error and "at least 3" in done.error
    # where it ran is on record even for a failed round (this machine has no GPU)
    assert done.metrics["device"] == this_cpu()
    assert round_execute(r.pk) is None  # a duplicate delivery does nothing


def test_snapshot_uses_majority_and_drops_ties(tiny_models, alice, bob, django_user_model):
    carol = django_user_model.objects.create_user(username="carol", password="x")
    project = make_project(tiny_models, overlap=3, first_batch=2)
    votes = {alice: ["a", "tie"], bob: ["a", "both_bad"], carol: ["b", "tie"]}
    for user, choices in votes.items():
        for choice in choices:
            a = assignment_next(annotator=user, project=project)
            vote_submit(annotator=user, assignment_id=a.pk, choice=choice, strength=3 if choice == "a" else None)
    records, snapshot = preference_snapshot(project)
    assert snapshot["votes"] == 6 and snapshot["pairs"] == 1
    assert snapshot["dropped"]["tie_or_both_bad"] == 1
    (record,) = records
    assert record["agreement"] == pytest.approx(2 / 3)
    assert record["margin"] == 1.0
