"""Set up the demo: users, a project with written prompts, the SmolLM2 round-0 policy, the first batch.

Safe to run again: each step checks what already exists and skips it.
"""
import json
import secrets
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from feedback.demo_prompts import GUIDELINES, demo_prompt_rows
from feedback.models import Comparison, Project
from feedback.services.generation import comparisons_generate, generation_config, prompts_for_batch
from feedback.services.model_paths import policy_base_path
from feedback.services.projects import membership_add, project_policy_init, prompts_import
from training.progress import Hooks

DEMO_PROJECT = "Demo assistant"
DEMO_USERS = (("admin", True), ("annotator", False))


class Command(BaseCommand):
    help = "Create the demo users and project, convert SmolLM2 once and generate the first comparisons."

    def add_arguments(self, parser):
        parser.add_argument("--comparisons", type=int, default=24, help="size of the first batch (default 24)")

    def handle(self, *args, comparisons: int, **options):
        self._users()
        project = self._project()
        self._members(project)
        self._policy(project)
        self._first_batch(project, comparisons)
        self.stdout.write(self.style.SUCCESS("Demo ready."))

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"==> {text}"))

    def _users(self) -> None:
        self._step("Demo users")
        cred_file = settings.DATA_DIR / "demo_credentials.json"
        creds = json.loads(cred_file.read_text()) if cred_file.exists() else {}
        User = get_user_model()
        for username, staff in DEMO_USERS:
            if not User.objects.filter(username=username).exists():
                password = secrets.token_urlsafe(9)
                User.objects.create_user(username=username, password=password, is_staff=staff, is_superuser=staff)
                creds[username] = password
                cred_file.write_text(json.dumps(creds, indent=2))
                cred_file.chmod(0o600)
            password = creds.get(username, "(set earlier; not recorded here)")
            role = "admin (studio + Django admin)" if staff else "annotator"
            self.stdout.write(f"    {role:32} username: {username:10} password: {password}")

    def _project(self) -> Project:
        self._step("Demo project and prompts")
        with transaction.atomic():
            project, created = Project.objects.get_or_create(
                name=DEMO_PROJECT, defaults={"guidelines": GUIDELINES, "votes_per_comparison": 1}
            )
            if project.prompts.exists():
                self.stdout.write(f"    already has {project.prompts.count()} prompts, skipped")
            else:
                rows = demo_prompt_rows()
                prompts_import(project=project, rows=rows, source="demo")
                self.stdout.write(f"    imported {len(rows)} prompts")
        return project

    def _members(self, project: Project) -> None:
        self._step("Demo annotator joins the demo project")
        annotator = get_user_model().objects.get(username="annotator")
        _, created = membership_add(project=project, user=annotator)
        self.stdout.write("    added" if created else "    already a member, skipped")

    def _policy(self, project: Project) -> None:
        self._step("Round-0 policy (SmolLM2-135M-Instruct)")
        path = policy_base_path(project)
        if not (path / "config.json").exists():
            self.stdout.write(f"    converting the bundled GGUF to safetensors under {path} (once, ~30 s) ...")
        started = time.monotonic()
        checkpoint, created = project_policy_init(project=project)
        note = f"registered in {time.monotonic() - started:.0f} s" if created else "already registered, skipped"
        self.stdout.write(f"    {checkpoint.name}: {checkpoint.path} ({note})")

    def _first_batch(self, project: Project, count: int) -> None:
        self._step(f"First batch of comparisons ({count})")
        if Comparison.objects.filter(project=project).exists():
            self.stdout.write("    comparisons exist, skipped")
            return
        checkpoint, _ = project_policy_init(project=project)
        prompts = prompts_for_batch(project, count)
        started = time.monotonic()

        def report(*, stage, step, total, metrics=None):
            elapsed = time.monotonic() - started
            # the rate so far gives the time left; the first report has no rate yet
            eta = f", about {elapsed / step * (total - step):.0f} s left" if step and total > step else ""
            self.stdout.write(f"    sampling responses {step} of {total} ({elapsed:.0f} s{eta})")

        made = comparisons_generate(
            project=project, prompts=prompts, checkpoint_a=checkpoint, checkpoint_b=checkpoint, batch=0,
            config=generation_config(project), hooks=Hooks(report=report),
        )
        self.stdout.write(f"    {len(made)} comparisons ready to rate")
