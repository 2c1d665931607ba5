"""training/ stays plain Python: it imports nothing from Django or the web app."""
import ast
import subprocess
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[2] / "training"


def test_no_module_in_training_imports_django_or_the_app():
    offenders = []
    for path in TRAINING.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("django", "feedback", "rlhf_site", "rest_framework", "celery")]
    assert offenders == []


def test_training_imports_without_django_settings():
    code = "import training.ppo, training.reward, training.generation, sys; assert 'django' not in sys.modules"
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=TRAINING.parent, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
