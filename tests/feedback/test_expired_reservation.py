"""An expired reservation is offered again, to others and to whoever let it expire."""
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback.models import Assignment, Vote
from feedback.services.assignment import assignment_next
from feedback.services.votes import vote_submit
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def _expire(assignment):
    Assignment.objects.filter(pk=assignment.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))


def test_one_annotator_gets_back_what_they_let_expire(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    first = assignment_next(annotator=alice, project=project)
    _expire(first)
    again = assignment_next(annotator=alice, project=project)
    assert again is not None and again.pk == first.pk and again.left_is_a == first.left_is_a
    assert again.reserved_until > timezone.now() + timedelta(minutes=14)
    vote_submit(annotator=alice, assignment_id=again.pk, choice="a")
    assert assignment_next(annotator=alice, project=project) is None  # voted: never offered again
    assert Vote.objects.count() == 1 and Assignment.objects.count() == 1


def test_a_skip_is_still_never_offered_again(tiny_models, alice):
    from feedback.services.assignment import assignment_skip

    project = make_project(tiny_models, first_batch=1)
    first = assignment_next(annotator=alice, project=project)
    assignment_skip(annotator=alice, assignment_id=first.pk, reason="expertise")
    assert assignment_next(annotator=alice, project=project) is None


def test_a_slot_taken_by_someone_else_is_not_offered_back(tiny_models, alice, bob):
    project = make_project(tiny_models, first_batch=1)
    first = assignment_next(annotator=alice, project=project)
    _expire(first)
    assert assignment_next(annotator=bob, project=project).comparison_id == first.comparison_id
    assert assignment_next(annotator=alice, project=project) is None  # the one slot is bob's now
