"""Settings of the serving process: the web settings, routed to the OpenAI-compatible API only."""
from rlhf_site.settings import *  # noqa: F401,F403

ROOT_URLCONF = "rlhf_site.serve_urls"
# The openai client posts to /v1/chat/completions without a trailing slash.
APPEND_SLASH = False
