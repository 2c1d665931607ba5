"""The serving process under 1, 4 and 16 concurrent clients, against a bare `model.generate` loop.

    .venv/bin/python bench/serve.py --model /path/to/policy-folder [--max-tokens 32]

Sets up a throwaway data dir (SQLite) with one project whose round-0 policy is --model
(default: a tiny random model, which only exercises the plumbing), starts the serving
process as `scripts/demo` does (gunicorn -c rlhf_site/serve.conf.py) and the web server
beside it, and drives /v1/chat/completions with the official `openai` client, streamed
(so time to first token is measured), at each concurrency level. Every client sends
--requests-each requests with its own seed. Then, in this process, the bare baseline:
the same prompts one at a time through `model.generate` (sampling, same max tokens), and
once more as one padded batch of 16.

While the 16 clients run, a probe thread times a cheap authenticated request to the
serving process itself (what a page would cost if serving were mounted in the web
process) and to the web process (`/api/v1/projects/`): the measurement behind keeping
serving in its own process.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "How do I reset my password?", "Summarize: the meeting moved to Tuesday because the room was booked.",
    "Translate to French: good morning, how are you?", "Write a two-line poem about the sea.",
    "Explain what a reward model is in one sentence.", "My order arrived broken. What should I do?",
    "Give me three tips for a job interview.", "Why is the sky blue?",
]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def setup(data_dir: Path, model: str) -> str:
    """Migrate a fresh SQLite db, create a project on `model` and a member; return their API token."""
    os.environ["RLHF_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlhf_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from feedback.models import Project, ProjectMembership
    from feedback.services.projects import project_policy_init

    call_command("migrate", verbosity=0)
    project = Project.objects.create(name="bench", policy_base_model=model)
    project_policy_init(project=project)
    user = get_user_model().objects.create_user(username="client", password="client-pw-123")
    ProjectMembership.objects.create(project=project, user=user)
    return Token.objects.create(user=user).key


def wait_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def run_level(base: str, key: str, clients: int, each: int, max_tokens: int) -> dict:
    import openai

    ttft, latencies, tokens = [], [], []
    lock = threading.Lock()

    def client(c: int):
        api = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=600)
        for r in range(each):
            start = time.perf_counter()
            first = None
            stream = api.chat.completions.create(
                model="bench/active", messages=[{"role": "user", "content": PROMPTS[(c + r) % len(PROMPTS)]}],
                max_tokens=max_tokens, temperature=0.7, seed=c * 1000 + r, stream=True,
                stream_options={"include_usage": True})
            used = 0
            for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - start
                if chunk.usage:
                    used = chunk.usage.completion_tokens
            with lock:
                ttft.append(first if first is not None else time.perf_counter() - start)
                latencies.append(time.perf_counter() - start)
                tokens.append(used)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "req_s": len(latencies) / wall,
            "tok_s": sum(tokens) / wall, "ttft_p50": pct(ttft, 0.5), "ttft_p95": pct(ttft, 0.95),
            "lat_p50": pct(latencies, 0.5), "wall": wall}


def probe(url: str, headers: dict, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60).read()
        out.append(time.perf_counter() - start)
        time.sleep(0.2)


def bare(model_path: str, n: int, max_tokens: int) -> dict:
    import torch

    from training.generation import encode_prompts
    from training.models import load_policy

    model, tokenizer = load_policy(model_path)
    torch.manual_seed(0)

    def gen(prompts):
        enc = encode_prompts(tokenizer, prompts)
        out = model.generate(**enc, do_sample=True, temperature=0.7, top_k=0, max_new_tokens=max_tokens,
                             min_new_tokens=1, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return int(((new != tokenizer.pad_token_id) | (new == tokenizer.eos_token_id)).sum())

    gen(PROMPTS[:1])  # warm-up
    start, tokens = time.perf_counter(), 0
    for i in range(n):
        tokens += gen([PROMPTS[i % len(PROMPTS)]])
    one_by_one = {"req_s": n / (time.perf_counter() - start), "tok_s": tokens / (time.perf_counter() - start)}
    start = time.perf_counter()
    tokens = gen([PROMPTS[i % len(PROMPTS)] for i in range(16)])
    batched = {"req_s": 16 / (time.perf_counter() - start), "tok_s": tokens / (time.perf_counter() - start)}
    return {"sequential": one_by_one, "batch16": batched}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="policy folder (default: a tiny random model)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests-each", type=int, default=2)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--port", type=int, default=8061)
    parser.add_argument("--torch-threads", type=int, default=0, help="torch threads, server and bare (0: default)")
    args = parser.parse_args()
    # `timeout` sends SIGTERM: turn it into SystemExit so the finally below stops the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    data_dir = Path(tempfile.mkdtemp(prefix="rlhf-serve-bench-"))
    model = args.model
    if not model:
        from tests.helpers import TINY_WORDS
        from training.tiny import build_tiny_policy

        model = str(build_tiny_policy(data_dir / "tiny", TINY_WORDS + " ".join(PROMPTS).lower().split()))
    key = setup(data_dir, model)
    env = {**os.environ, "RLHF_DATA_DIR": str(data_dir), "ACCESS_LOG": ""}
    if args.torch_threads:
        env["SERVE_TORCH_THREADS"] = str(args.torch_threads)
    serve = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "rlhf_site/serve.conf.py"], cwd=ROOT,
                             env={**env, "SERVE_PORT": str(args.port)})
    web = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-c", "rlhf_site/gunicorn.conf.py"], cwd=ROOT,
                           env={**env, "PORT": str(args.port + 1), "WEB_WORKERS": "1"})
    base, web_base = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.port + 1}"
    results, probes = [], {}
    try:
        wait_up(f"{base}/healthz")
        wait_up(f"{web_base}/accounts/login/")
        run_level(base, key, 1, 1, 4)  # loads the model
        auth = {"Authorization": f"Bearer {key}"}
        for name, url, headers in (("serve idle", f"{base}/v1/models", auth),
                                   ("web idle", f"{web_base}/api/v1/projects/", {"Authorization": f"Token {key}"})):
            out = []
            for _ in range(10):
                start = time.perf_counter()
                urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60).read()
                out.append(time.perf_counter() - start)
            probes[name] = out
        for level in [int(x) for x in args.levels.split(",")]:
            stop, serve_out, web_out = threading.Event(), [], []
            threads = []
            if level == max(int(x) for x in args.levels.split(",")):
                threads = [threading.Thread(target=probe, args=(f"{base}/v1/models", auth, stop, serve_out)),
                           threading.Thread(target=probe, args=(f"{web_base}/api/v1/projects/",
                                                                {"Authorization": f"Token {key}"}, stop, web_out))]
                for t in threads:
                    t.start()
            results.append(run_level(base, key, level, args.requests_each, args.max_tokens))
            stop.set()
            for t in threads:
                t.join()
            if threads:
                probes["serve under load"], probes["web under load"] = serve_out, web_out
            print(results[-1], flush=True)
    finally:
        serve.terminate()
        web.terminate()
        serve.wait()
        web.wait()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    baseline = bare(model, 8, args.max_tokens)

    print(f"\nmodel: {args.model or 'tiny random'}, max_tokens {args.max_tokens}, torch threads "
          f"{args.torch_threads or 'default'}, "
          f"{args.requests_each} streamed requests per client, temperature 0.7\n")
    print("| clients | requests | req/s | tokens/s | TTFT p50 | TTFT p95 | latency p50 |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['clients']} | {r['requests']} | {r['req_s']:.2f} | {r['tok_s']:.1f} | "
              f"{r['ttft_p50'] * 1000:.0f} ms | {r['ttft_p95'] * 1000:.0f} ms | {r['lat_p50'] * 1000:.0f} ms |")
    for name, b in baseline.items():
        print(f"| bare generate, {name} | 8 | {b['req_s']:.2f} | {b['tok_s']:.1f} | | | |")
    print("\n| cheap request (p50 / p95) | ms |\n|---|---|")
    for name, values in probes.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} / {pct(values, 0.95) * 1000:.0f} (n={len(values)}) |")


if __name__ == "__main__":
    main()
