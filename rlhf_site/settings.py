"""RLHF Studio settings, read from the environment (12-factor).

Every variable is optional on a laptop; see README.md for the list.
"""
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from rlhf_site.env import env_bool, env_broker, env_database, env_int, env_list, env_str

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
        key_file = DATA_DIR / "secret_key"
        if not key_file.exists():
            import secrets

            key_file.write_text(secrets.token_urlsafe(50))
            key_file.chmod(0o600)
        SECRET_KEY = key_file.read_text().strip()
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
    # Static files straight from the app server (gunicorn), no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

# Upper bound on one round's wall time; the worker kills a task that overruns it.
RLHF_ROUND_TIME_LIMIT_S = env_int("RLHF_ROUND_TIME_LIMIT_S", 3 * 3600, minimum=60)
# Run lifecycle (services/runs.py): a running worker stamps its run every INTERVAL seconds;
# a run with no stamp for STALE seconds has lost its worker and is reaped. A queued run whose
# message is older than REQUEUE_AFTER is sent again (the broker may have lost it).
RLHF_HEARTBEAT_INTERVAL_S = env_int("RLHF_HEARTBEAT_INTERVAL_S", 10, minimum=1)
RLHF_HEARTBEAT_STALE_S = env_int("RLHF_HEARTBEAT_STALE_S", 60, minimum=2)
RLHF_REQUEUE_AFTER_S = env_int("RLHF_REQUEUE_AFTER_S", 300, minimum=10)
RLHF_RUN_MAX_ATTEMPTS = env_int("RLHF_RUN_MAX_ATTEMPTS", 3, minimum=1)

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

