"""Forms behind the annotator and studio pages."""
from django import forms

from feedback.models import Vote
from training.config import PPOConfig, RewardConfig

SKIP_REASONS = [
    ("unclear", "unclear prompt"),
    ("expertise", "needs expertise"),
    ("offensive", "offensive content"),
]


class VoteForm(forms.Form):
    """A vote as the page sends it: in screen sides, mapped to samples by the view."""

    side = forms.ChoiceField(choices=[("left", "left"), ("right", "right"), ("tie", "tie"), ("both_bad", "both bad")])
    strength = forms.TypedChoiceField(choices=[("", "")] + [(str(v), l) for v, l in Vote.Strength.choices],
                                      coerce=int, required=False, empty_value=None)
    rationale = forms.CharField(required=False, max_length=5000)
    time_spent_ms = forms.IntegerField(required=False, min_value=0, max_value=24 * 3600 * 1000)
    idempotency_key = forms.CharField(required=False, max_length=100)


class SkipForm(forms.Form):
    """Why an annotator passes on a comparison."""

    reason = forms.ChoiceField(choices=SKIP_REASONS)


class RoundLaunchForm(forms.Form):
    """The settings an admin usually changes when launching a round from the studio."""

    ppo_steps = forms.IntegerField(min_value=1, max_value=1000, initial=PPOConfig.steps, label="PPO steps")
    ppo_batch_size = forms.IntegerField(min_value=1, max_value=256, initial=PPOConfig.batch_size,
                                        label="Episodes per PPO step")
    reward_epochs = forms.IntegerField(min_value=1, max_value=50, initial=RewardConfig.epochs,
                                       label="Reward model epochs")
    min_pairs = forms.IntegerField(min_value=1, max_value=100000, initial=4, label="Minimum preference pairs")
    next_batch_prompts = forms.IntegerField(min_value=1, max_value=10000, initial=16, label="Prompts in the next batch")

    def round_config(self) -> dict:
        d = self.cleaned_data
        batch = d["ppo_batch_size"]
        return {
            "ppo": {"steps": d["ppo_steps"], "batch_size": batch,
                    "mini_batch_size": _largest_divisor_up_to(batch, PPOConfig.mini_batch_size)},
            "reward": {"epochs": d["reward_epochs"]},
            "min_pairs": d["min_pairs"],
            "next_batch_prompts": d["next_batch_prompts"],
        }


def _largest_divisor_up_to(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)
