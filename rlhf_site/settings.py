"""RLHF Studio settings, read from the environment (12-factor).

Every variable is optional on a laptop; see README.md for the list.
"""
import os
import shlex
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from rlhf_site.env import env_bool, env_broker, env_cache, env_database, env_int, env_list, env_str
from training.device import check_device_name, check_dtype_name

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("RLHF_DATA_DIR", str(BASE_DIR / "data"))).expanduser().resolve()
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"RLHF_DATA_DIR={str(DATA_DIR)!r} cannot be created: {exc}") from None
CHECKPOINT_DIR = DATA_DIR / "checkpoints"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # A fixed fallback key would let anyone forge sessions on a deployed instance;
        # a per-data-dir random key keeps a laptop install working across restarts.
        # Web and worker containers start together on one data volume: O_EXCL lets
        # exactly one of them write the key, and the other reads that one.
        key_file = DATA_DIR / "secret_key"
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            import secrets

            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
        SECRET_KEY = ""
        for _ in range(50):  # the other process may be between creating and writing the file
            SECRET_KEY = key_file.read_text().strip()
            if SECRET_KEY:
                break
            time.sleep(0.1)
        if not SECRET_KEY:
            raise ImproperlyConfigured(f"{key_file} is empty; delete it or set SECRET_KEY.")
    else:
        SECRET_KEY = "insecure-debug-only-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Model locations. Empty means the defaults shipped in PyPI wheels: SmolLM2-135M-Instruct
# (converted once to safetensors under the data dir) and all-MiniLM-L6-v2.
RLHF_POLICY_MODEL = env_str("RLHF_POLICY_MODEL", "")
RLHF_REWARD_MODEL = env_str("RLHF_REWARD_MODEL", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI's files served from our static files: /api/v1/docs/ works offline.
    "drf_spectacular_sidecar",
    "feedback",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "feedback.middleware.ChunkedBodyMiddleware",
    # Static files straight from the app server (gunicorn), no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "feedback.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "rlhf_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "rlhf_site.wsgi.application"

DATABASES = {"default": env_database("DATABASE_URL", DATA_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # collectstatic's; WhiteNoise warns at every start when it is missing
# Serve from the source folders too (no collectstatic step for a laptop install).
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "feedback:home"
LOGOUT_REDIRECT_URL = "login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's JSON parser plus checks for what would otherwise be a 500 (deep nesting, NUL, lone surrogates).
    "DEFAULT_PARSER_CLASSES": [
        "feedback.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "feedback.api.errors.api_exception_handler",
    # `?format=` names the export format (trl, openai, ...), not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    # Scoped rates; a scope's view sets throttle_scope. Tune per deployment.
    "DEFAULT_THROTTLE_RATES": {
        "votes": env_str("THROTTLE_VOTES", "1200/min"),
        "exports": env_str("THROTTLE_EXPORTS", "60/min"),
        "imports": env_str("THROTTLE_IMPORTS", "120/min"),
        # /v1/chat/completions, per token: a generous default, generation is the real limit.
        "serve": env_str("THROTTLE_SERVE", "600/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF Studio API",
    "DESCRIPTION": "Import prompts and pairs, collect votes, launch training rounds, export preference datasets.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# How long after voting an annotator (or an API client voting again) may change the vote
# without going through "my votes"; a vote a round's snapshot used never changes.
RLHF_VOTE_UNDO_S = env_int("RLHF_VOTE_UNDO_S", 120, minimum=0)
# Below this many held-out pairs the reward model's accuracy is shown greyed out.
RLHF_MIN_HELDOUT_PAIRS = env_int("RLHF_MIN_HELDOUT_PAIRS", 20, minimum=1)

# Request bodies beyond this are refused before parsing (imports say so clearly).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RLHF_MAX_UPLOAD_MB", 64, minimum=1) * 1024 * 1024

# Models a process keeps loaded (the playground in the web process, the serving process):
# least recently used dropped first once either bound is passed.
RLHF_MAX_LOADED_MODELS = env_int("RLHF_MAX_LOADED_MODELS", 2, minimum=1)
RLHF_MAX_LOADED_MB = env_int("RLHF_MAX_LOADED_MB", 8192, minimum=1)
# Serving (rlhf_site/serve.py): requests arriving within the window share a batch of at most
# MAX_BATCH rows; MAX_TOKENS bounds max_tokens.
RLHF_SERVE_MAX_BATCH = env_int("RLHF_SERVE_MAX_BATCH", 16, minimum=1)
RLHF_SERVE_BATCH_WINDOW_MS = env_int("RLHF_SERVE_BATCH_WINDOW_MS", 5, minimum=0)
RLHF_SERVE_MAX_TOKENS = env_int("RLHF_SERVE_MAX_TOKENS", 1024, minimum=1)

# Where training, scoring and generation run (training/device.py): auto = the GPU when torch
# sees one, else the CPU; cuda on a machine without one is an error at the first model load,
# never a silent CPU run. RLHF_DTYPE: auto = bf16 on GPUs and CPUs that compute it natively
# (AVX512-BF16 or AMX), fp32 elsewhere; fp32 forces full precision.
try:
    RLHF_DEVICE = check_device_name(env_str("RLHF_DEVICE", "auto"))
    RLHF_DTYPE = check_dtype_name(env_str("RLHF_DTYPE", "auto"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None

# Data-parallel training (training/launch.py): with more than one process, a round's reward
# and PPO stages run under `python -m torch.distributed.run --nproc-per-node N`, one GPU per
# process on CUDA (gloo on the CPU); RLHF_TORCHRUN_ARGS go to torchrun first (multi-node
# rendezvous; default --standalone, one machine).
RLHF_TRAIN_PROCESSES = env_int("RLHF_TRAIN_PROCESSES", 1, minimum=1)
try:
    RLHF_TORCHRUN_ARGS = shlex.split(env_str("RLHF_TORCHRUN_ARGS", "--standalone"))
except ValueError as exc:
    raise ImproperlyConfigured(f"RLHF_TORCHRUN_ARGS: {exc}") from None

# Upper bound on one round's wall time; the worker kills a task that overruns it.
RLHF_ROUND_TIME_LIMIT_S = env_int("RLHF_ROUND_TIME_LIMIT_S", 3 * 3600, minimum=60)
# Run lifecycle (services/runs.py): a running worker stamps its run every INTERVAL seconds;
# a run with no stamp for STALE seconds has lost its worker and is reaped. A queued run whose
# message is older than REQUEUE_AFTER is sent again (the broker may have lost it).
RLHF_HEARTBEAT_INTERVAL_S = env_int("RLHF_HEARTBEAT_INTERVAL_S", 10, minimum=1)
RLHF_HEARTBEAT_STALE_S = env_int("RLHF_HEARTBEAT_STALE_S", 60, minimum=2)
RLHF_REQUEUE_AFTER_S = env_int("RLHF_REQUEUE_AFTER_S", 300, minimum=10)
RLHF_RUN_MAX_ATTEMPTS = env_int("RLHF_RUN_MAX_ATTEMPTS", 3, minimum=1)

# One cache shared by every web process and thread: rate limits (API throttles, failed
# logins) counted per gunicorn process would let WEB_WORKERS times the limit through.
# Redis when REDIS_URL is set; otherwise a table in the database (`migrate` creates it,
# see feedback/apps.py).
CACHES = {"default": env_cache("REDIS_URL", "rlhf_cache")}

# Failed logins per account and per client address within the window; beyond that
# even the right password is refused until the window has passed.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_S", 15 * 60, minimum=1)

# Production hardening, all switched by one variable (HTTPS in front of the app).
RLHF_SECURE = env_bool("RLHF_SECURE", False)
if RLHF_SECURE:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # A TLS-terminating proxy (nginx, a load balancer) tells Django the original scheme.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script anywhere (every script is a static file); inline style attributes are
# allowed because progress bars set their width that way and they cannot run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# Celery: Redis when REDIS_URL is set, otherwise a broker that needs no server.
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = env_broker("REDIS_URL", DATA_DIR)
# Run state lives in the database (models.Run), so task results are not stored.
CELERY_TASK_IGNORE_RESULT = True
# Ack after the task ends: a worker killed mid-task leaves its message to be delivered again.
CELERY_TASK_ACKS_LATE = True
# ...and a pool child that dies (SIGKILL, OOM) puts its message back instead of acking it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: a round holds the worker for minutes, so prefetched
# messages would wait behind it instead of going to an idle worker.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
if CELERY_BROKER_URL.startswith(("redis", "rediss", "unix")):
    # Redis redelivers an unacked message after this long: it must outlast the longest round,
    # or a running round's message would be handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": RLHF_ROUND_TIME_LIMIT_S + 3600}
# A request that enqueues must not hang on a dead Redis: a few seconds, then 503.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# The reaper (services/runs.py) runs on every worker start and then on this schedule (`worker -B`).
# A reap message that waited behind a long round is dropped (the next one comes 30 s later).
CELERY_BEAT_SCHEDULE = {"reap-runs": {"task": "feedback.reap_runs", "schedule": 30.0, "options": {"expires": 25}}}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "rlhf")
# Jobs (comparison batches, generation, exports) and training rounds can go to queues of
# their own, so a GPU worker takes only rounds and batches never wait behind a 3-hour round.
# Unset, both are CELERY_QUEUE: one worker reading one queue, as on a laptop. Routed by
# Celery's own task_routes; RLHF_ names, because every CELERY_ setting is read as Celery's.
RLHF_GENERATION_QUEUE = env_str("CELERY_GENERATION_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
RLHF_TRAINING_QUEUE = env_str("CELERY_TRAINING_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ROUTES = {
    "feedback.run_job": {"queue": RLHF_GENERATION_QUEUE},
    "feedback.run_training_round": {"queue": RLHF_TRAINING_QUEUE},
    # the reaper (beat) stays on CELERY_QUEUE, which the generation worker also reads
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Server errors (500s) must reach the log whatever DEBUG is.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "feedback": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
        "training": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    },
}

