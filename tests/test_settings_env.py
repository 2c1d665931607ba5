"""A wrong environment value stops start-up with a message naming the variable."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _check(env_overrides: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG")}
    env.update({"RLHF_DATA_DIR": str(tmp_path), **env_overrides})
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("name, value", [
    ("DEBUG", "maybe"),
    ("DATABASE_URL", "mysql://root@localhost/db"),
    ("DATABASE_URL", "not a url"),
    ("REDIS_URL", "http://localhost:6379"),
    ("ALLOWED_HOSTS", "a.example,,b.example"),
    ("RLHF_ROUND_TIME_LIMIT_S", "soon"),
    ("RLHF_DEVICE", "gpu"),
    ("RLHF_DTYPE", "fp8"),
])
def test_bad_value_names_the_variable(name, value, tmp_path):
    result = _check({name: value}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]


def test_defaults_need_no_server(tmp_path):
    result = _check({}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "broker" / "queue").is_dir()  # the serverless broker's folder


def test_filesystem_broker_and_sqlite_are_the_defaults(tmp_path, monkeypatch):
    from rlhf_site.env import env_broker, env_database

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url, options = env_broker("REDIS_URL", tmp_path)
    assert url == "filesystem://"
    # every folder the transport writes, exchange tables included, lives in the data dir
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert options[key].startswith(str(tmp_path)), key
    assert env_database("DATABASE_URL", tmp_path / "db.sqlite3")["ENGINE"] == "rlhf_site.sqlite_backend"
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x")
    assert env_database("DATABASE_URL", tmp_path / "db.sqlite3")["ENGINE"] == "django.db.backends.postgresql"
