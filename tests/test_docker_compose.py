"""docker-compose.yml wires web, worker, PostgreSQL and Redis with the app's own variables."""
import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_compose_has_the_four_services_wired_by_environment():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["RLHF_DATA_DIR"] == "/data"
        assert any(v.endswith(":/data") for v in services[name]["volumes"])
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}
    assert "gunicorn -c rlhf_site/gunicorn.conf.py" in services["web"]["command"]
    assert "migrate" in services["web"]["command"]
    assert services["web"]["environment"]["BIND"] == "0.0.0.0:8000"
    assert services["worker"]["command"].startswith("celery -A rlhf_site worker")
    assert "-Q rlhf" in services["worker"]["command"]
    # the reaper's schedule runs once per deployment, from the app's own settings
    assert services["beat"]["command"].startswith("celery -A rlhf_site beat")
    assert services["postgres"]["image"].startswith("postgres")
    assert services["redis"]["image"].startswith("redis")


def test_docker_compose_ships_no_fixed_secret_key():
    env = yaml.safe_load(COMPOSE.read_text())["x-env"]
    value = str(env.get("SECRET_KEY", ""))
    # either the operator's own (required or empty: then a random key is written to the data volume)
    assert re.fullmatch(r"\$\{SECRET_KEY(:?\?[^}]*|:-)?\}", value), value
    assert env.get("RLHF_SECURE", "").startswith("${RLHF_SECURE")
