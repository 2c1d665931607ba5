"""Settings of the serving process: the web settings, routed to the OpenAI-compatible API only."""
from rlhf_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "rlhf_site.serve_urls"
# The openai client posts to /v1/chat/completions without a trailing slash.
APPEND_SLASH = False
# Its threads answer generation requests of seconds each: a connection per request costs
# nothing there, and dozens kept open would each hold SQLite's page cache.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
