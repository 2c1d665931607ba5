"""Forms behind the annotator and studio pages."""
from dataclasses import asdict, fields

from django import forms

from feedback.models import ComparisonFlag, Vote
from training.config import DPOConfig, GenerationConfig, PPOConfig, RewardConfig, field_help

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


class VoteEditForm(forms.Form):
    """A changed vote, in screen sides; `undo` says it came from "Undo last vote" (the window applies)."""

    side = VoteForm.base_fields["side"]
    strength = VoteForm.base_fields["strength"]
    rationale = forms.CharField(required=False, max_length=5000)
    undo = forms.BooleanField(required=False)


class FlagForm(forms.Form):
    """An annotator's report on a comparison, besides (not instead of) voting."""

    reason = forms.ChoiceField(choices=ComparisonFlag.Reason.choices, widget=forms.RadioSelect)
    note = forms.CharField(required=False, max_length=2000, widget=forms.TextInput(attrs={"placeholder": "what is wrong (optional)"}))


class HistoryFilterForm(forms.Form):
    """Filters of "my votes"."""

    project = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    choice = forms.ChoiceField(required=False, choices=[("", "any choice"), ("a", "A better"), ("b", "B better"),
                                                        ("tie", "tie"), ("both_bad", "both bad")])

    def __init__(self, *args, projects=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "all projects")] + [(p.pk, p.name) for p in projects]


class SkipForm(forms.Form):
    """Why an annotator passes on a comparison."""

    reason = forms.ChoiceField(choices=SKIP_REASONS)


class RoundLaunchForm(forms.Form):
    """The settings an admin usually changes when launching a round from the studio."""

    method = forms.ChoiceField(
        label="Training method", required=False, initial="ppo",
        choices=[("ppo", "reward model + PPO"), ("dpo", "DPO (no reward model)")],
        help_text="DPO uses only its epochs below; PPO its steps, episodes and the reward model's epochs.")
    ppo_steps = forms.IntegerField(min_value=1, max_value=1000, initial=PPOConfig.steps, label="PPO steps")
    ppo_batch_size = forms.IntegerField(min_value=1, max_value=256, initial=PPOConfig.batch_size,
                                        label="Episodes per PPO step")
    reward_epochs = forms.IntegerField(min_value=1, max_value=50, initial=RewardConfig.epochs,
                                       label="Reward model epochs")
    dpo_epochs = forms.IntegerField(min_value=1, max_value=50, initial=DPOConfig.epochs, required=False,
                                    label="DPO epochs")
    min_pairs = forms.IntegerField(min_value=1, max_value=100000, initial=4, label="Minimum preference pairs")
    next_batch_prompts = forms.IntegerField(min_value=1, max_value=10000, initial=16, label="Prompts in the next batch")

    def round_config(self) -> dict:
        d = self.cleaned_data
        if d.get("method") == "dpo":
            return {"method": "dpo", "dpo": {"epochs": d["dpo_epochs"] or DPOConfig.epochs}, "min_pairs": d["min_pairs"],
                    "next_batch_prompts": d["next_batch_prompts"]}
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


SETTING_SECTIONS = [
    ("reward", "Reward model", RewardConfig),
    ("ppo", "PPO", PPOConfig),
    ("dpo", "DPO (instead of reward model and PPO)", DPOConfig),
    ("generation", "Next batch: generation", GenerationConfig),
]
ROUND_TOP_LEVEL = [
    ("min_pairs", "Minimum preference pairs",
     "The round fails at the snapshot with fewer pairs than this (votes for A or B; ties and both-bad do not count)."),
    ("next_batch_prompts", "Prompts in the next batch",
     "Train prompts (fewest comparisons first) that get one sample from the new policy and one from its parent."),
]


def _setting_field(f, default, help_text: str) -> forms.Field:
    """A form field for one config dataclass field, typed after it, its default shown.

    None is optional: a setting left empty (or not sent) keeps its default.
    """
    shown = "none" if default is None else default
    help_text = f"{help_text} Default: {shown}."
    if f.type is bool:
        # yes/no rather than a checkbox, so that "not sent" (default) differs from "no"
        return forms.TypedChoiceField(choices=[("true", "yes"), ("false", "no")], coerce=lambda v: v == "true",
                                      required=False, empty_value=None, initial="true" if default else "false",
                                      help_text=help_text)
    if f.type is float:
        return forms.FloatField(required=False, initial=default, help_text=help_text)
    # int, and `int | None` (a seed)
    return forms.IntegerField(required=False, initial=default, help_text=help_text)


class RoundSettingsForm(forms.Form):
    """Every setting a round takes, by section, defaults filled in and each one's help.

    Field names are `section__name` (e.g. `ppo__steps`); the ranges are checked by the
    config dataclasses themselves (round_config_resolve), whose errors name `ppo.steps`
    and are put back beside the field.
    """

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        from feedback.services.generation import generation_config
        from feedback.services.rounds import ROUND_DEFAULTS

        self.fields["method"] = forms.ChoiceField(
            label="Training method", required=False, initial="ppo",
            choices=[("ppo", "reward model + PPO"), ("dpo", "DPO (no reward model)")],
            help_text="How the policy learns from the votes: PPO against a reward model trained on them, or DPO "
                      "on the preference pairs directly. Only that method's section below is used. Default: ppo.")
        for name, label, help_text in ROUND_TOP_LEVEL:
            self.fields[name] = forms.IntegerField(label=label, initial=ROUND_DEFAULTS[name], required=False,
                                                   help_text=f"{help_text} Default: {ROUND_DEFAULTS[name]}.")
        project_generation = asdict(generation_config(project)) if project is not None else {}
        self.sections = []
        for section, title, cls in SETTING_SECTIONS:
            help_texts = field_help(cls)
            names = []
            for f in fields(cls):
                # the project's own generation settings are this form's defaults
                default = project_generation.get(f.name, f.default) if section == "generation" else f.default
                field = _setting_field(f, default, help_texts.get(f.name, ""))
                field.label = f.name.replace("_", " ")
                self.fields[f"{section}__{f.name}"] = field
                names.append(f"{section}__{f.name}")
            self.sections.append((section, title, names))

    def top_level_fields(self):
        return [self["method"]] + [self[name] for name, _, _ in ROUND_TOP_LEVEL]

    def section_fields(self):
        """(section, title, bound fields) for the template."""
        return [(section, title, [self[n] for n in names]) for section, title, names in self.sections]

    def round_config(self) -> dict:
        """The cleaned values as round_launch takes them."""
        config: dict = {}
        for name, value in self.cleaned_data.items():
            if value is None or value == "":
                continue
            if "__" in name:
                section, key = name.split("__", 1)
                config.setdefault(section, {})[key] = value
            else:
                config[name] = value
        return config

    def add_setting_error(self, dotted: str, message: str) -> None:
        """Put a service error naming `ppo.steps` beside the `ppo__steps` field (or above the form)."""
        name = dotted.replace(".", "__")
        self.add_error(name if name in self.fields else None, f"{dotted}: {message}" if name not in self.fields else message)


class CheckpointActionForm(forms.Form):
    """Why a policy is promoted or rolled back: kept in the project's checkpoint history."""

    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Kept in the history below.")


PLAYGROUND_MAX_TOKENS = 256


SERVER_CHOICE = 0  # checkpoint ids start at 1


class PlaygroundForm(forms.Form):
    """One prompt, two policies and the sampling settings of the playground."""

    prompt = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Type a prompt, or pick a held-out one below.")
    prompt_id = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Held-out prompt")
    checkpoint_a = forms.TypedChoiceField(coerce=int, label="Checkpoint A")
    checkpoint_b = forms.TypedChoiceField(coerce=int, label="Checkpoint B")
    max_new_tokens = forms.IntegerField(min_value=1, max_value=PLAYGROUND_MAX_TOKENS, initial=64,
                                        help_text=f"At most {PLAYGROUND_MAX_TOKENS}.")
    temperature = forms.FloatField(min_value=0.05, max_value=2.0, initial=0.7)
    top_p = forms.FloatField(min_value=0.05, max_value=1.0, initial=1.0)
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1,
                              help_text="Same seed, same answers. Empty: a fresh draw.")

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        from feedback.models import Checkpoint, Prompt

        policies = list(Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY).order_by("created_at", "id"))
        choices = [(c.pk, f"{c.name}{' (active)' if c.is_active else ''}") for c in policies]
        self.checkpoints = {c.pk: c for c in policies}
        backend = (project.generation_backend or {}) if project is not None else {}
        if backend.get("kind") == "openai":
            # the project's generation server is a side like any checkpoint (None: not one of ours)
            choices.append((SERVER_CHOICE, f"server: {backend['model']}"))
            self.checkpoints[SERVER_CHOICE] = None
        self.fields["checkpoint_a"].choices = choices
        self.fields["checkpoint_b"].choices = choices
        if policies:
            active = next((c for c in policies if c.is_active), policies[-1])
            self.fields["checkpoint_a"].initial = active.pk
            self.fields["checkpoint_b"].initial = active.parent_id or policies[0].pk
        held_out = Prompt.objects.filter(project=project, split=Prompt.Split.HELD_OUT).order_by("id")[:500]
        self.fields["prompt_id"].choices = [("", "— type one above —")] + [(p.pk, p.text[:100]) for p in held_out]
        self.prompts = {p.pk: p for p in held_out}

    def clean(self):
        data = super().clean()
        if not (data.get("prompt") or "").strip() and not data.get("prompt_id"):
            self.add_error("prompt", "Type a prompt or pick a held-out one.")
        return data

    def prompt_messages(self) -> list[dict]:
        if self.cleaned_data.get("prompt_id"):
            return self.prompts[self.cleaned_data["prompt_id"]].messages
        return [{"role": "user", "content": self.cleaned_data["prompt"].strip()}]

    def params(self) -> dict:
        return {k: self.cleaned_data[k] for k in ("max_new_tokens", "temperature", "top_p", "seed")}
