"""gunicorn settings shared by scripts/demo, docker-compose and the load benchmark."""
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
# Processes use every core (the GIL limits one process); threads cover slow clients.
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 120
graceful_timeout = 10
accesslog = os.environ.get("ACCESS_LOG", "-") or None
wsgi_app = "rlhf_site.wsgi:application"
# No control socket: gunicorn 27 puts every server's at ~/.gunicorn/gunicorn.ctl, so the
# web server and the serving process (serve.conf.py) would take the same path.
control_socket_disable = True
