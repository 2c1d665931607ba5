"""gunicorn settings of the serving process (scripts/demo, docker-compose, bench/serve.py).

One process on purpose: loaded models and the batching queue are per process, so every
request must reach the same one to share a batch; threads wait on the queue (and stream
their answers) while one generation thread does the work.
"""
import os

bind = os.environ.get("SERVE_BIND", f"127.0.0.1:{os.environ.get('SERVE_PORT', '8001')}")
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("SERVE_THREADS", "64"))
# A long answer streams for minutes on a CPU.
timeout = 600
graceful_timeout = 10
accesslog = os.environ.get("ACCESS_LOG", "-") or None
wsgi_app = "rlhf_site.serve:application"
raw_env = ["DJANGO_SETTINGS_MODULE=rlhf_site.settings_serve"]
control_socket_disable = True  # see gunicorn.conf.py
