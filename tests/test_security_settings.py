"""Security headers and production settings: CSP with no inline script, RLHF_SECURE, no fixed SECRET_KEY."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _manage(args: list[str], tmp_path, **env_overrides) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is the browser tests' (Playwright's loop); no deployment has it
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update({"RLHF_DATA_DIR": str(tmp_path), **env_overrides})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_check_deploy_is_clean_with_rlhf_secure_and_names_what_is_missing_without(tmp_path):
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], tmp_path, RLHF_SECURE="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], tmp_path)
    assert result.returncode != 0 and "SESSION_COOKIE_SECURE" in result.stderr + result.stdout


def test_rlhf_secure_must_be_a_boolean(tmp_path):
    result = _manage(["check"], tmp_path, RLHF_SECURE="perhaps")
    assert result.returncode != 0 and "RLHF_SECURE" in result.stderr


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_and_no_inline_script(client, alice):
    client.force_login(alice)
    for path in ("/accounts/login/", "/annotate/"):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'"
        assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in policy
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"

    # and nothing of ours needs more: every script is a static file, no on* handlers
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        # template tags are not markup: `{% if only == "x" %}` is no on* handler
        text = re.sub(r"\{%.*?%\}|\{\{.*?\}\}", "", template.read_text())
        for match in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in match.group() and 'type="application/json"' not in match.group():
                offenders.append(f"{template.name}: {match.group()}")
        offenders += [f"{template.name}: {m.group()}" for m in re.finditer(r"\son[a-z]+\s*=", text)]
        offenders += [f"{template.name}: {m.group()}" for m in re.finditer(r"javascript:", text)]
    assert offenders == []
