"""Small line charts drawn on the server as inline SVG, which static/feedback/charts.js
turns into uPlot charts with values on hover when scripts run.

A chart is a title, the polyline's points in a fixed viewBox, and the figures a reader
needs beside the line (first, last, min, max, count). Non-finite and missing values are
skipped, so a metric that was not reported leaves a gap rather than a broken chart.
"""
import json
import math
from dataclasses import dataclass

WIDTH, HEIGHT, PAD = 240, 64, 4


@dataclass(frozen=True)
class LineChart:
    title: str
    points: str
    first: float
    last: float
    low: float
    high: float
    count: int
    width: int = WIDTH
    height: int = HEIGHT
    values: tuple = ()

    @property
    def data_json(self) -> str:
        """Title and values for charts.js (a data- attribute: no inline script)."""
        return json.dumps({"title": self.title, "y": list(self.values)})

    @property
    def description(self) -> str:
        return (f"{self.title}: {self.count} values from {self.first:.4g} to {self.last:.4g} "
                f"(min {self.low:.4g}, max {self.high:.4g})")


def line_chart(title: str, values, *, width: int = WIDTH, height: int = HEIGHT) -> LineChart | None:
    """A chart of `values` in order, or None when fewer than two are numbers."""
    ys = []
    for v in values:
        try:
            y = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(y):
            ys.append(y)
    if len(ys) < 2:
        return None
    low, high = min(ys), max(ys)
    span = (high - low) or 1.0
    step = (width - 2 * PAD) / (len(ys) - 1)
    points = " ".join(
        f"{PAD + i * step:.1f},{height - PAD - (y - low) / span * (height - 2 * PAD):.1f}" for i, y in enumerate(ys)
    )
    return LineChart(title, points, ys[0], ys[-1], low, high, len(ys), width, height, tuple(ys))


def metric_charts(rows: list[dict], series: list[tuple[str, str]]) -> list[LineChart]:
    """One chart per (key, title) over `rows` (e.g. a round's per-step metrics), skipping empty ones."""
    charts = [line_chart(title, [row.get(key) for row in rows]) for key, title in series]
    return [c for c in charts if c is not None]


PPO_SERIES = [
    ("score", "mean RM score"), ("kl", "KL to reference"), ("entropy", "entropy"), ("approx_kl", "approx KL"),
    ("clipfrac", "policy clip fraction"), ("vf_loss", "value loss"), ("response_length", "response length"),
    ("eos_fraction", "ending in EOS"), ("kl_coef", "KL coefficient"),
]
REWARD_SERIES = [("loss", "reward-model loss"), ("accuracy", "train accuracy"), ("margin", "train margin")]
DPO_SERIES = [
    ("loss", "DPO loss"), ("accuracy", "train accuracy"), ("margin", "implicit reward margin"),
    ("chosen_reward", "chosen implicit reward"), ("rejected_reward", "rejected implicit reward"),
    ("grad_norm", "grad norm"),
]


def round_history_charts(rounds: list[tuple]) -> list[LineChart]:
    """Figures per finished round, oldest first, from (round, human win-rate counts) newest first."""
    from feedback.selectors.rounds import round_kl_to_round0

    done = [(r, win) for r, win in reversed(rounds) if r.status == "done"]

    def summary(r, part: str, key: str):
        return ((r.metrics or {}).get(part) or {}).get(key)

    charts = [
        line_chart("human win-rate vs parent", [win["win_rate"] for _, win in done]),
        line_chart("RM held-out accuracy", [summary(r, "reward_summary", "eval_accuracy") for r, _ in done]),
        line_chart("KL to reference, end of PPO", [round_kl_to_round0(r.metrics) for r, _ in done]),
    ]
    return [c for c in charts if c is not None]
