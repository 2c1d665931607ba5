"""The leaderboard: computed in a job, shown at once from the last result, recomputed when votes arrive."""
import json

import pytest

from feedback.models import Job
from feedback.services.jobs import job_execute
from feedback.services.leaderboard import leaderboard_compute, leaderboard_current
from tests.feedback.leaderboard_data import add_comparison, build_project, vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(alice, bob):
    project, r0, r1, rnd = build_project([alice, bob])
    # round 1 beats round 0 in 6 of 8 judged votes; one both-bad
    for i in range(4):
        c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd)
        vote(c, alice, "a")
        vote(c, bob, "a" if i < 2 else ("b" if i == 2 else "tie"))
    c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd)
    vote(c, alice, "both_bad")
    ext = add_comparison(project, a="gpt-x", b="llama-y")
    vote(ext, alice, "a")
    return project, r0, r1, rnd


def test_first_view_queues_a_job_and_shows_nothing_yet(board):
    project = board[0]
    current = leaderboard_current(project)
    assert current["result"] is None and current["stale"]
    assert current["job"].kind == Job.Kind.RATINGS and current["job"].status == "queued"
    # a second view does not queue a second job
    assert leaderboard_current(project)["job"].pk == current["job"].pk
    assert Job.objects.filter(kind=Job.Kind.RATINGS).count() == 1


def test_the_job_computes_ratings_anchored_at_round_0(board):
    project, r0, r1, _ = board
    job = leaderboard_current(project)["job"]
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    current = leaderboard_current(project)
    assert not current["stale"] and current["job"] is None
    rows = {m["name"]: m for m in current["result"]["models"]}
    assert rows["round 0"]["rating"] == 1000.0 and rows["round 0"]["anchor"]
    # 6.5 of 8 judged (a tie is half) → odds 6.5/1.5
    import math
    assert rows["round 1"]["rating"] == pytest.approx(1000 + 400 * math.log10(6.5 / 1.5), abs=1.0)
    assert rows["round 1"]["low"] < rows["round 1"]["rating"] < rows["round 1"]["high"]
    assert rows["round 1"]["votes"] == 9 and rows["round 1"]["both_bad"] == 1
    assert rows["round 1"]["round"] == 1 and rows["round 0"]["round"] == 0
    # external models are on the board but not linked to round 0
    assert rows["gpt-x"]["rating"] is None and rows["gpt-x"]["votes"] == 1


def test_a_new_vote_makes_it_stale_and_the_page_still_shows_the_last_board(board, client, admin_user, alice):
    project, r0, r1, rnd = board
    job_execute(leaderboard_current(project)["job"].pk)
    c = add_comparison(project, a=r1, b=r0, batch=1, training_round=rnd)
    vote(c, alice, "b")
    client.force_login(admin_user)
    response = client.get(f"/studio/projects/{project.pk}/leaderboard/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "new votes have arrived since" in html and "Recomputing with the latest votes" in html
    assert "round 1" in html and "1000" in html
    new_job = Job.objects.filter(kind=Job.Kind.RATINGS, status="queued").get()
    job_execute(new_job.pk)
    html = client.get(f"/studio/projects/{project.pk}/leaderboard/").content.decode()
    assert "new votes have arrived since" not in html and "Recomputing" not in html


def test_api_answers_at_once_with_the_last_board(board, client, admin_user, alice):
    project = board[0]
    client.force_login(admin_user)
    first = client.get(f"/api/v1/projects/{project.pk}/leaderboard/").json()
    assert first["stale"] and first["leaderboard"] is None and first["job"]
    job_execute(first["job"])
    second = client.get(f"/api/v1/projects/{project.pk}/leaderboard/").json()
    assert not second["stale"] and second["job"] is None
    assert second["leaderboard"]["anchor_name"] == "round 0"
    assert len(second["leaderboard"]["matrix"]["win_rate"]) == 4
    client.force_login(alice)
    assert client.get(f"/api/v1/projects/{project.pk}/leaderboard/").status_code == 403


def test_arena_export_carries_the_ratings(board, client, admin_user):
    project, r0, r1, _ = board
    leaderboard_compute(project)
    client.force_login(admin_user)
    response = client.get(f"/api/v1/projects/{project.pk}/export/?format=arena")
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    row = next(r for r in rows if r["model_a"] == f"{r1.name} (round {r1.produced_by.number})")
    assert row["rating_b"]["rating"] == 1000.0
    assert row["rating_a"]["low"] < row["rating_a"]["rating"] < row["rating_a"]["high"]


def test_retiring_a_comparison_makes_the_board_stale(board):
    project, r0, r1, _ = board
    leaderboard_compute(project)
    assert not leaderboard_current(project, refresh=False)["stale"]
    from feedback.services.comparisons import comparison_retire

    comparison_retire(comparison=project.comparisons.filter(votes__isnull=False).first())
    assert leaderboard_current(project, refresh=False)["stale"]
