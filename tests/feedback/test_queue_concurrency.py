"""20 annotators drain 200 comparisons with overlap 3 at the same time: exactly 600 votes."""
import threading

import pytest
from django.db import connection, connections

from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample, Vote
from feedback.services.assignment import assignment_next
from feedback.services.votes import vote_submit

pytestmark = pytest.mark.django_db(transaction=True)


def _project_with_comparisons(n: int, overlap: int) -> Project:
    project = Project.objects.create(name="Concurrent", votes_per_comparison=overlap)
    checkpoint = Checkpoint.objects.create(project=project, kind="policy", path="/none", name="r0", sha256="0", is_active=True)
    prompts = Prompt.objects.bulk_create([Prompt(project=project, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)])
    samples = Sample.objects.bulk_create(
        [Sample(prompt=p, checkpoint=checkpoint, text=f"{p.pk}-{side}") for p in prompts for side in "ab"]
    )
    Comparison.objects.bulk_create([
        Comparison(project=project, prompt=p, sample_a=samples[2 * i], sample_b=samples[2 * i + 1], votes_needed=overlap)
        for i, p in enumerate(prompts)
    ])
    return project


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row-lock concurrency is exercised on PostgreSQL (set DATABASE_URL)")
def test_twenty_annotators_drain_the_queue_exactly(django_user_model):
    project = _project_with_comparisons(200, overlap=3)
    users = [django_user_model.objects.create_user(username=f"annotator{i}", password="x") for i in range(20)]
    errors = []
    barrier = threading.Barrier(len(users))

    def work(user):
        try:
            barrier.wait()
            while (a := assignment_next(annotator=user, project=project)) is not None:
                vote_submit(annotator=user, assignment_id=a.pk, choice="a", idempotency_key=f"{user.pk}-{a.pk}")
                # as a web request does: the connection goes back to the pool after each vote, so
                # 20 annotators and the test's own connection share the pool's 20 on a loaded machine
                connections.close_all()
        except Exception as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert Vote.objects.filter(comparison__project=project).count() == 600
    per_comparison = Vote.objects.values("comparison").annotate(n=__import__("django").db.models.Count("id"))
    assert {row["n"] for row in per_comparison} == {3}
    pairs = Vote.objects.values_list("comparison", "annotator")
    assert len(set(pairs)) == len(pairs)
    assert not Comparison.objects.filter(project=project, status="open").exists()
