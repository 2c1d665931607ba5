"""The work queue and vote storage: exact counts, no duplicates, idempotent submits."""
from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from feedback.models import Assignment, Comparison, Vote
from feedback.services.assignment import assignment_next, assignment_skip
from feedback.services.votes import VoteError, vote_submit
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_annotator_never_gets_the_same_comparison_twice(tiny_models, alice):
    project = make_project(tiny_models, first_batch=3)
    seen = []
    while (a := assignment_next(annotator=alice, project=project)) is not None:
        seen.append(a.comparison_id)
        vote_submit(annotator=alice, assignment_id=a.pk, choice="a")
    assert sorted(seen) == sorted(Comparison.objects.filter(project=project).values_list("id", flat=True))
    assert Vote.objects.filter(annotator=alice).count() == 3


def test_what_an_annotator_voted_on_or_skipped_does_not_hide_the_rest_of_the_queue(tiny_models, alice):
    """More open comparisons than one candidate read holds are ones alice is done with
    (others still need to vote on them): she still gets the next one."""
    from feedback.services.projects import comparisons_import

    project = make_project(tiny_models, overlap=3, first_batch=0)
    comparisons_import(project=project, rows=[{"prompt": f"q{i}", "response_a": "a", "response_b": "b"}
                                              for i in range(14)])
    for i in range(12):
        a = assignment_next(annotator=alice, project=project)
        if i % 3:
            vote_submit(annotator=alice, assignment_id=a.pk, choice="a")
        else:
            assignment_skip(annotator=alice, assignment_id=a.pk, reason="unclear")
    assert Comparison.objects.filter(project=project, status=Comparison.Status.OPEN).count() == 14
    following = assignment_next(annotator=alice, project=project)
    ids = sorted(Comparison.objects.filter(project=project).values_list("id", flat=True))
    assert following is not None and following.comparison_id == ids[12]


def test_overlap_caps_reservations_plus_votes(tiny_models, alice, bob, django_user_model):
    project = make_project(tiny_models, overlap=2, first_batch=1)
    carol = django_user_model.objects.create_user(username="carol", password="x")
    a1 = assignment_next(annotator=alice, project=project)
    a2 = assignment_next(annotator=bob, project=project)
    assert a1.comparison_id == a2.comparison_id
    assert assignment_next(annotator=carol, project=project) is None  # two live slots taken

    # Bob's reservation expires: his slot returns to the pool and Carol gets it.
    Assignment.objects.filter(pk=a2.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    a3 = assignment_next(annotator=carol, project=project)
    assert a3 is not None and a3.comparison_id == a1.comparison_id


def test_reload_returns_the_same_reservation(tiny_models, alice):
    project = make_project(tiny_models, first_batch=2)
    first = assignment_next(annotator=alice, project=project)
    assert assignment_next(annotator=alice, project=project).pk == first.pk


def test_vote_is_stored_once_on_repeat_and_completes_the_comparison(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    first = vote_submit(annotator=alice, assignment_id=a.pk, choice="b", strength=3, idempotency_key="k1")
    again = vote_submit(annotator=alice, assignment_id=a.pk, choice="b", strength=3, idempotency_key="k1")
    assert first.created and not again.created and first.vote.pk == again.vote.pk
    assert Vote.objects.count() == 1
    a.comparison.refresh_from_db()
    assert a.comparison.status == Comparison.Status.COMPLETE
    vote = first.vote
    expected_left = a.comparison.sample_a_id if a.left_is_a else a.comparison.sample_b_id
    assert vote.left_sample_id == expected_left


def test_bad_choice_is_rejected_naming_the_field_and_stores_nothing(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    with pytest.raises(VoteError) as err:
        vote_submit(annotator=alice, assignment_id=a.pk, choice="left")
    assert err.value.field == "choice"
    with pytest.raises(VoteError) as err:
        vote_submit(annotator=alice, assignment_id=a.pk, choice="a", strength=7)
    assert err.value.field == "strength"
    assert Vote.objects.count() == 0


def test_annotator_cannot_vote_on_someone_elses_assignment(tiny_models, alice, bob):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    with pytest.raises(VoteError):
        vote_submit(annotator=bob, assignment_id=a.pk, choice="a")


def test_skip_frees_the_slot_for_others_but_not_for_the_skipper(tiny_models, alice, bob):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    assignment_skip(annotator=alice, assignment_id=a.pk, reason="unclear")
    assert assignment_next(annotator=alice, project=project) is None
    assert assignment_next(annotator=bob, project=project).comparison_id == a.comparison_id


def test_database_refuses_a_second_vote_per_annotator(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    c = Comparison.objects.get(project=project)
    Vote.objects.create(comparison=c, annotator=alice, choice="a", left_sample=c.sample_a)
    with pytest.raises(IntegrityError):
        Vote.objects.create(comparison=c, annotator=alice, choice="b", left_sample=c.sample_a)


def test_database_refuses_two_active_policies(tiny_models):
    from feedback.models import Checkpoint

    project = make_project(tiny_models, first_batch=0)
    with pytest.raises(IntegrityError):
        Checkpoint.objects.create(project=project, kind="policy", path="/x", name="x", sha256="0", is_active=True)
