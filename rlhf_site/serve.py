"""WSGI entry point of the serving process (`gunicorn -c rlhf_site/serve.conf.py`).

A process of its own, apart from the web server: it keeps models loaded and batches
concurrent requests in one place, and its CPU-bound generation never holds up the
annotation pages (BENCHMARKS.md, "Serving").
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings_serve")

if os.environ.get("SERVE_TORCH_THREADS"):
    # On a CPU shared with other busy processes, torch's default (one thread per core)
    # makes its threads wait on each other at every op: measured 10-100x slower per token
    # on the 2-core dev box than one thread (BENCHMARKS.md, "Serving").
    import torch

    torch.set_num_threads(int(os.environ["SERVE_TORCH_THREADS"]))

application = get_wsgi_application()
