"""Forms behind the studio's project, upload, member and annotator pages.

They check shapes and types; the services check meaning (paths exist, names are free)
and the views put service errors back on the field they name.
"""
from django import forms
from django.contrib.auth import get_user_model

from feedback.models import Project, ProjectMembership, Prompt
from feedback.services.generation_backend import DEFAULTS, LOCAL, OPENAI
from feedback.services.projects import GUIDELINES_MAX_BYTES
from training.config import GenerationConfig

UPLOAD_KINDS = [("prompts", "prompts"), ("comparisons", "pairs (prompt, response_a, response_b)")]
UPLOAD_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson",
                ".csv": "text/csv"}
GENERATION_FIELDS = ("max_new_tokens", "temperature", "top_p", "batch_size")
BACKEND_FIELDS = ("base_url", "model", "concurrency", "timeout_s", "max_retries")


class ProjectForm(forms.Form):
    """A project's settings; generation settings are separate fields here, one dict in the model."""

    name = forms.CharField(max_length=200)
    guidelines = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 12}),
        help_text=f"Markdown, shown to annotators above every comparison (at most {GUIDELINES_MAX_BYTES // 1000} KB).",
    )
    votes_per_comparison = forms.IntegerField(min_value=1, max_value=100, initial=1, label="Votes per comparison",
                                              help_text="How many annotators judge each comparison (overlap).")
    reveal_models = forms.BooleanField(
        required=False, label="Reveal models after each vote",
        help_text="After a vote (never before), show the annotator which model wrote which side, as Chatbot Arena does.",
    )
    eval_parent_share = forms.FloatField(
        required=False, min_value=0, max_value=1, initial=0.25, label="Held-out share: new vs parent",
        help_text="Fraction (0 to 1) of each batch after round 0 that pairs the new policy with its parent "
                  "on held-out prompts, to measure it.",
    )
    eval_round0_share = forms.FloatField(
        required=False, min_value=0, max_value=1, initial=0.25, label="Held-out share: new vs round 0",
        help_text="Fraction (0 to 1) that pairs the new policy with round 0 on held-out prompts. Both shares "
                  "together at most 1; the rest is train prompts, new vs parent.",
    )
    policy_base_model = forms.CharField(
        required=False, max_length=500, label="Base policy",
        help_text="Empty: the bundled SmolLM2-135M-Instruct. Or an absolute path on the server: a folder with "
                  "config.json and weights, or a .gguf file (converted once by a background job).",
    )
    reward_base_model = forms.CharField(
        required=False, max_length=500, label="Reward model base",
        help_text="Empty: the bundled all-MiniLM-L6-v2. Or an absolute path to a folder with config.json and weights.",
    )
    max_new_tokens = forms.IntegerField(min_value=1, max_value=4096, initial=GenerationConfig.max_new_tokens,
                                        label="Max new tokens", help_text="Longest response, in tokens.")
    temperature = forms.FloatField(min_value=0.01, max_value=5, initial=GenerationConfig.temperature,
                                   help_text="Sampling temperature (0, 5].")
    top_p = forms.FloatField(min_value=0.01, max_value=1, initial=GenerationConfig.top_p, label="Top p",
                             help_text="Nucleus sampling; 1 keeps the full distribution (what PPO assumes).")
    batch_size = forms.IntegerField(min_value=1, max_value=512, initial=GenerationConfig.batch_size,
                                    label="Generation batch size", help_text="Prompts per generate call.")
    kind = forms.ChoiceField(
        choices=[(LOCAL, "local (transformers, on the worker)"), (OPENAI, "an OpenAI-compatible server")],
        initial=LOCAL, required=False, label="Generation backend",
        help_text="Where batches and the playground sample. Training rounds always sample their new policy locally.",
    )
    base_url = forms.CharField(required=False, max_length=500, label="Server base URL",
                               help_text="Up to /v1, e.g. http://gpu-box:8000/v1 (vLLM, TGI, llama.cpp, a hosted API).")
    model = forms.CharField(required=False, max_length=200, label="Server model",
                            help_text="The model name the server knows; stored with every sample it writes.")
    generation_api_key = forms.CharField(
        required=False, max_length=500, label="API key", strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored API key")
    concurrency = forms.IntegerField(required=False, min_value=1, max_value=64, initial=DEFAULTS["concurrency"],
                                     help_text="Requests in flight at once.")
    timeout_s = forms.FloatField(required=False, min_value=1, max_value=3600, initial=DEFAULTS["timeout_s"], label="Timeout (s)",
                                 help_text="Per request, the whole answer included.")
    max_retries = forms.IntegerField(required=False, min_value=0, max_value=10, initial=DEFAULTS["max_retries"], label="Retries",
                                     help_text="On HTTP 429, 5xx, timeouts and refused connections, with doubling waits.")

    def __init__(self, *args, key_set: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["generation_api_key"].help_text = (
            f"Currently {'set' if key_set else 'not set'}. Stored, never shown again; leave empty to keep it.")

    @classmethod
    def for_project(cls, project: Project, **kwargs) -> "ProjectForm":
        settings = {**{f: getattr(GenerationConfig, f) for f in GENERATION_FIELDS}, **(project.generation_settings or {})}
        initial = {"name": project.name, "guidelines": project.guidelines,
                   "votes_per_comparison": project.votes_per_comparison, "reveal_models": project.reveal_models,
                   "eval_parent_share": project.eval_parent_share, "eval_round0_share": project.eval_round0_share,
                   "policy_base_model": project.policy_base_model, "reward_base_model": project.reward_base_model,
                   **{f: settings.get(f) for f in GENERATION_FIELDS}}
        backend = project.generation_backend or {}
        initial["kind"] = backend.get("kind", LOCAL)
        initial.update({f: backend.get(f, DEFAULTS.get(f, "")) for f in BACKEND_FIELDS})
        return cls(initial=initial, key_set=bool(project.generation_api_key), **kwargs)

    def project_data(self) -> dict:
        """The cleaned form as the project service takes it."""
        d = self.cleaned_data
        data = {k: d[k] for k in ("name", "guidelines", "votes_per_comparison", "reveal_models", "policy_base_model",
                                  "reward_base_model")}
        # left empty: the project keeps its shares (a new one gets the defaults)
        data.update({k: d[k] for k in ("eval_parent_share", "eval_round0_share") if d.get(k) is not None})
        data["generation_settings"] = {f: d[f] for f in GENERATION_FIELDS}
        server = {f: d[f] for f in BACKEND_FIELDS if d[f] not in (None, "")}
        data["generation_backend"] = {**DEFAULTS, **server, "kind": OPENAI} if d["kind"] == OPENAI else {}
        if d["generation_api_key"]:
            data["generation_api_key"] = d["generation_api_key"]
        elif d["clear_api_key"]:
            data["generation_api_key"] = ""
        return data

    def field_for(self, service_field: str) -> str | None:
        """The form field a service error names (`generation_settings.top_p` → `top_p`)."""
        name = service_field.split(".")[-1]
        return name if name in self.fields else None


class UploadForm(forms.Form):
    """A prompts or pairs file, with options applied to every row."""

    kind = forms.ChoiceField(choices=UPLOAD_KINDS, initial="prompts", label="What the file holds")
    file = forms.FileField(help_text="JSON (a list of rows), JSONL (one row per line) or CSV, UTF-8.")
    holdout_percent = forms.IntegerField(
        min_value=0, max_value=100, initial=0, label="Hold out %",
        help_text="Share of rows without their own split that go to held-out (evaluation) prompts.",
    )
    tags = forms.CharField(required=False, max_length=500, help_text="Comma-separated tags added to every row.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        suffix = "." + upload.name.rsplit(".", 1)[-1].lower() if "." in upload.name else ""
        if suffix not in UPLOAD_TYPES:
            raise forms.ValidationError("must end in .json, .jsonl, .ndjson or .csv")
        return upload

    def content_type(self) -> str:
        name = self.cleaned_data["file"].name
        return UPLOAD_TYPES["." + name.rsplit(".", 1)[-1].lower()]

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class BatchForm(forms.Form):
    """Sample N comparisons from the active policy (a batch job on the worker)."""

    prompts = forms.IntegerField(min_value=1, max_value=10_000, initial=16, label="Prompts",
                                 help_text="Prompts with the fewest comparisons so far are taken first.")
    samples_per_prompt = forms.TypedChoiceField(
        choices=[(2, "2 (1 comparison)"), (3, "3 (3 comparisons)"), (4, "4 (6 comparisons)")], coerce=int, initial=2,
        label="Responses per prompt", help_text="Every pair of a prompt's responses becomes a comparison.",
    )
    split = forms.ChoiceField(choices=Prompt.Split.choices, initial=Prompt.Split.TRAIN)


class MemberAddForm(forms.Form):
    """Add a user to a project."""

    user = forms.ModelChoiceField(queryset=get_user_model().objects.none(), label="User")
    role = forms.ChoiceField(choices=ProjectMembership.Role.choices, initial=ProjectMembership.Role.ANNOTATOR)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = (
            get_user_model().objects.filter(is_active=True).exclude(memberships__project=project).order_by("username")
        )


class AnnotatorCreateForm(forms.Form):
    """A new annotator account and the projects it starts in."""

    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _")
    projects = forms.ModelMultipleChoiceField(queryset=Project.objects.filter(archived_at__isnull=True),
                                              required=False, widget=forms.CheckboxSelectMultiple)
