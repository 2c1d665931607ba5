"""One "majority" rule: the training snapshot and every export format agree on which pairs exist."""
import pytest

from feedback.services.assignment import assignment_next
from feedback.services.exports import majority, preference_snapshot
from feedback.services.projects import comparisons_import
from feedback.services.votes import vote_submit
from tests.feedback.test_api import _client, _export
from tests.helpers import make_project

pytestmark = pytest.mark.django_db

# comparison → the three annotators' votes, and the pair (if any) that must come of them
CASES = {
    "q1": (["a", "tie", "tie"], None),  # most saw no difference: not a pair (training used to make one)
    "q2": (["a", "a", "b"], "a"),
    "q3": (["a", "b", "tie"], None),  # no majority
    "q4": (["b", "b", "both_bad"], "b"),
    "q5": (["tie", "both_bad", "a"], None),
    "q6": (["b", "tie", "b"], "b"),
    "q7": (["both_bad", "both_bad", "a"], None),
}


def test_majority_rule():
    assert majority(["a", "tie", "tie"]) == ("tie", pytest.approx(2 / 3))
    assert majority(["a", "a", "b"]) == ("a", pytest.approx(2 / 3))
    assert majority(["a", "b", "tie"]) == (None, 0.0)
    assert majority(["b"]) == ("b", 1.0)
    assert majority([]) == (None, 0.0)


@pytest.fixture
def voted(tiny_models, alice, bob, django_user_model, admin_user):
    carol = django_user_model.objects.create_user(username="carol", password="carol-pw-123")
    project = make_project(tiny_models, overlap=3, first_batch=0)
    comparisons_import(project=project, rows=[
        {"prompt": question, "response_a": f"{question} answer A", "response_b": f"{question} answer B"}
        for question in CASES
    ])
    annotators = [alice, bob, carol]
    for index, user in enumerate(annotators):
        while (assignment := assignment_next(annotator=user, project=project)) is not None:
            question = assignment.comparison.prompt.text
            vote_submit(annotator=user, assignment_id=assignment.pk, choice=CASES[question][0][index])
    return project


def _expected() -> set[tuple[str, str]]:
    return {(f"{q} answer {w.upper()}", f"{q} answer {'B' if w == 'a' else 'A'}")
            for q, (_, w) in CASES.items() if w is not None}


def test_snapshot_and_every_export_format_agree_on_the_pairs(voted, admin_user):
    records, snapshot = preference_snapshot(voted)
    assert snapshot["votes"] == 3 * len(CASES)
    assert {(r["chosen"], r["rejected"]) for r in records} == _expected()

    client = _client(admin_user)
    last = lambda text: text.rsplit("\n\nAssistant: ", 1)[1]  # noqa: E731
    readers = {
        "trl": lambda r: (r["chosen"], r["rejected"]),
        "trl-conversational": lambda r: (r["chosen"][0]["content"], r["rejected"][0]["content"]),
        "hh-rlhf": lambda r: (last(r["chosen"]), last(r["rejected"])),
        "openai": lambda r: (r["preferred_output"][0]["content"], r["non_preferred_output"][0]["content"]),
    }
    for fmt, read in readers.items():
        assert {read(row) for row in _export(client, voted, format=fmt)} == _expected(), fmt

    arena = _export(client, voted, format="arena")
    winners = {row["prompt"][0]["content"]: row["winner"] for row in arena}
    assert {q for q, w in winners.items() if w in ("model_a", "model_b")} == {
        q for q, (_, w) in CASES.items() if w is not None}
    assert winners["q1"] == "tie" and "q3" not in winners  # a tie verdict is shown as one; no verdict, no row


def test_a_pair_is_new_when_a_vote_on_it_falls_in_the_window(voted, alice, bob):
    from feedback.models import Vote
    from feedback.services.exports import records_mark_new_after

    last_bob = Vote.objects.filter(annotator=bob).order_by("-id").values_list("id", flat=True).first()
    last_alice = Vote.objects.filter(annotator=alice).order_by("-id").values_list("id", flat=True).first()
    records, _ = preference_snapshot(voted)
    assert records

    def new_after(after, up_to=None):
        marked = [dict(r) for r in records]
        records_mark_new_after(voted, marked, after, up_to)
        return sum(r["new"] for r in marked)

    assert new_after(None) == len(records)  # no earlier model: everything is new
    assert new_after(last_bob) == len(records)  # carol voted on every comparison after bob
    assert new_after(last_bob, up_to=last_bob) == 0  # ... but not by then: a snapshot of the past sees no new vote
    assert new_after(last_alice, up_to=last_bob) == len(records)  # bob's votes are in that window
    assert new_after(Vote.objects.order_by("-id").values_list("id", flat=True).first()) == 0
