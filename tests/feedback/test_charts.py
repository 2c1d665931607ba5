"""Server-drawn line charts: the points say what the numbers say, and bad values leave gaps."""
import math
import re

import pytest
from django.urls import reverse

from feedback.charts import HEIGHT, PAD, WIDTH, line_chart
from feedback.models import TrainingRound
from tests.helpers import make_project


def _points(chart_or_html: str) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in chart_or_html.split()]


def test_line_chart_scales_values_into_the_box():
    chart = line_chart("score", [1, 3, None, "x", math.nan, 2])
    assert chart.count == 3 and (chart.first, chart.last, chart.low, chart.high) == (1, 2, 1, 3)
    (x0, y0), (x1, y1), (x2, y2) = _points(chart.points)
    assert (x0, x1, x2) == (PAD, WIDTH / 2, WIDTH - PAD)
    assert y0 == HEIGHT - PAD and y1 == PAD and y2 == HEIGHT / 2  # low at the bottom, high at the top (SVG y grows down)
    assert "3 values from 1 to 2" in chart.description
    flat = line_chart("flat", [0.5, 0.5])
    assert [y for _, y in _points(flat.points)] == [HEIGHT - PAD] * 2
    assert line_chart("one", [1.0]) is None and line_chart("none", [None, "n/a"]) is None


@pytest.mark.django_db
def test_round_page_and_studio_draw_the_metrics(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    steps = [{"step": i, "score": s, "kl": k} for i, (s, k) in enumerate([(-1.0, 0.0), (0.0, 1.0), (1.0, 4.0)], 1)]
    r1 = TrainingRound.objects.create(project=project, number=1, status="done", config={}, metrics={
        "ppo": steps, "reward_summary": {"eval_accuracy": 0.6}, "ppo_summary": {"final_kl": 4.0}})
    TrainingRound.objects.create(project=project, number=2, status="done", config={}, metrics={
        "reward_summary": {"eval_accuracy": 0.9}, "ppo_summary": {"final_kl": 9.0}})
    client.force_login(admin_user)

    html = client.get(reverse("feedback:round_detail", args=[r1.pk])).content.decode()
    assert 'aria-label="mean RM score: 3 values from -1 to 1 (min -1, max 1)"' in html
    assert 'aria-label="KL to reference: 3 values from 0 to 4' in html
    assert "entropy:" not in html  # not reported, so not drawn
    polylines = re.findall(r'<polyline points="([^"]+)"', html)
    assert len(polylines) == 2 and all(len(_points(p)) == 3 for p in polylines)

    studio = client.get(reverse("feedback:studio")).content.decode()
    assert 'aria-label="RM held-out accuracy: 2 values from 0.6 to 0.9' in studio
    assert 'aria-label="KL to reference, end of PPO: 2 values from 4 to 9' in studio
    assert "human win-rate vs parent:" not in studio  # no votes on either round's batch yet
