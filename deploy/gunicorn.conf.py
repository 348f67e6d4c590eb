"""gunicorn settings for the bridge's web processes: `gunicorn -c deploy/gunicorn.conf.py`.

The outbox worker runs as its own process (`wallet-bridge worker`), never inside gunicorn workers."""

import multiprocessing
import os
from pathlib import Path

wsgi_app = "bridge.surfaces.wsgi:app"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = 30
graceful_timeout = 20
accesslog = "-"
# Never log query strings: a shop's REST keys could only ever appear there by mistake, but never in logs.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
# Nor a statement link's token (its reader's credential): every atom is written with /statement/[token].
logger_class = "bridge.surfaces.web.access_log.TokenFreeGunicornLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# /metrics for the whole service (bridge/surfaces/web/health.py): with PROMETHEUS_MULTIPROC_DIR set, every worker
# writes its counters to files there. The directory must exist and start empty when the service starts (a tmpfs
# such as /run/wallet-bridge/metrics, shared with the outbox workers); counters of exited workers keep counting.
def on_starting(server):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
