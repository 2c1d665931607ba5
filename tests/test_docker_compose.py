"""docker-compose.yml wires web, serving, a worker per queue, beat, Flower, PostgreSQL and Redis.

Checked against the project itself: every command it runs exists here, every queue a task
is routed to is read by some worker, and every variable it sets is documented in the README.
"""
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = ("web", "serve", "worker-generation", "worker-training", "beat", "flower")


def _spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _queues(service: dict) -> set[str]:
    words = _command(service)
    return set(words[words.index("-Q") + 1].split(","))


def test_compose_has_every_service_wired_by_environment():
    services = _spec()["services"]
    assert set(APP_SERVICES) | {"postgres", "redis"} <= set(services)
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"], name
        assert env["REDIS_URL"].startswith("redis://redis:6379"), name
        assert env["RLHF_DATA_DIR"] == "/data", name
        assert any(v.endswith(":/data") for v in services[name]["volumes"]), name
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}, name
    assert services["web"]["environment"]["BIND"] == "0.0.0.0:8000"
    assert services["postgres"]["image"].startswith("postgres")
    assert services["redis"]["image"].startswith("redis")
    # state survives a restart: database, broker and checkpoints on named volumes
    assert {"rlhf-data", "pg-data", "redis-data"} <= set(_spec()["volumes"])


def test_every_long_running_service_has_a_healthcheck():
    services = _spec()["services"]
    missing = [name for name, service in services.items() if name != "beat" and "healthcheck" not in service]
    assert missing == []


def test_commands_exist_in_the_project():
    services = _spec()["services"]
    commands = {name: " ".join(_command(services[name])) for name in APP_SERVICES}
    for name, command in commands.items():
        for config in re.findall(r"gunicorn -c (\S+)", command):
            assert (ROOT / config).is_file(), (name, config)
        for management in re.findall(r"manage\.py (\w+)", command):
            local = ROOT / "feedback" / "management" / "commands" / f"{management}.py"
            assert local.is_file() or management in {"migrate", "check"}, (name, management)
        if "celery" in command:
            assert "celery -A rlhf_site " in command and (ROOT / "rlhf_site" / "celery.py").is_file(), name
    assert "migrate" in commands["web"] and "gunicorn -c rlhf_site/gunicorn.conf.py" in commands["web"]
    assert commands["beat"].startswith("celery -A rlhf_site beat")
    assert commands["flower"].startswith("celery -A rlhf_site flower")
    # flower comes from the project's own optional extra, which the image installs
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^flower = \["flower==[\d.]+"\]', pyproject, re.M)
    assert '".[flower]"' in (ROOT / "Dockerfile").read_text()


def test_training_runs_one_at_a_time_in_the_workers_own_process_on_its_own_queue():
    services = _spec()["services"]
    env = _spec()["x-env"]
    training = _command(services["worker-training"])
    assert "--pool=solo" in training and "--concurrency=1" in training
    assert _queues(services["worker-training"]) == {env["CELERY_TRAINING_QUEUE"]}
    # the generation worker takes the jobs, and the default queue the reaper is sent to
    assert _queues(services["worker-generation"]) == {env["CELERY_QUEUE"], env["CELERY_GENERATION_QUEUE"]}
    assert services["worker-training"]["environment"]["RLHF_DEVICE"].startswith("${RLHF_DEVICE")
    # the GPU reservation is written in, commented out (a machine without one must still start it)
    assert "deploy" not in services["worker-training"]
    text = COMPOSE.read_text()
    block = text[text.index("  worker-training:"):text.index("  beat:")]
    assert re.search(r"#\s+- driver: nvidia", block) and re.search(r"#\s+capabilities: \[gpu\]", block)


def test_every_variable_compose_sets_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    spec = _spec()
    names = set(spec["x-env"])
    for name in APP_SERVICES:
        names |= set(spec["services"][name]["environment"])
    undocumented = sorted(n for n in names if f"`{n}`" not in readme)
    assert undocumented == []


def test_docker_compose_ships_no_fixed_secret_key():
    env = _spec()["x-env"]
    value = str(env.get("SECRET_KEY", ""))
    # either the operator's own (required or empty: then a random key is written to the data volume)
    assert re.fullmatch(r"\$\{SECRET_KEY(:?\?[^}]*|:-)?\}", value), value
    assert env.get("RLHF_SECURE", "").startswith("${RLHF_SECURE")
