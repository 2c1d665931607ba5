"""WSGI entry point of the serving process (`gunicorn -c rlhf_site/serve.conf.py`).

A process of its own, apart from the web server: it keeps models loaded and batches
concurrent requests in one place, and its CPU-bound generation never holds up the
annotation pages (BENCHMARKS.md, "Serving").
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings_serve")

application = get_wsgi_application()
