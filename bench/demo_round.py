"""Drive a running demo the way people do, over HTTP, and time one training round.

    scripts/demo &                      # in another terminal
    .venv/bin/python bench/demo_round.py --url http://127.0.0.1:8000 --votes 8

Logs in as the demo annotator (password from data/demo_credentials.json), votes on
`--votes` comparisons through /annotate/, logs in as the demo admin, launches a round
with the studio's default settings and polls its page until it finishes. Prints the
round's wall time and whether the new policy's samples are up for rating.
"""
import argparse
import http.cookiejar
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


class Browser:
    """Just enough of a browser: cookies, CSRF tokens, form posts."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as r:
            return r.read().decode()

    def post(self, path: str, data: dict, referer: str) -> str:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": token}).encode()
        req = urllib.request.Request(self.base + path, data=body, headers={"Referer": self.base + referer})
        with self.opener.open(req, timeout=60) as r:
            return r.read().decode()

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        page = self.post("/accounts/login/", {"username": username, "password": password}, "/accounts/login/")
        if "didn't match" in page:
            sys.exit(f"login failed for {username}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--votes", type=int, default=8)
    parser.add_argument("--credentials", default="data/demo_credentials.json")
    args = parser.parse_args()
    creds = json.loads(Path(args.credentials).read_text())

    annotator = Browser(args.url)
    annotator.login("annotator", creds["annotator"])
    for i in range(args.votes):
        page = annotator.get("/annotate/")
        m = re.search(r'action="(/annotate/(\d+)/vote/)"', page)
        if not m:
            sys.exit(f"no comparison to vote on after {i} votes")
        annotator.post(m.group(1), {"side": "left" if i % 2 else "right", "strength": "2"}, "/annotate/")
    print(f"voted {args.votes} times through /annotate/")

    admin = Browser(args.url)
    admin.login("admin", creds["admin"])
    studio = admin.get("/studio/")
    m = re.search(r'action="(/studio/projects/(\d+)/rounds/)"', studio)
    if not m:
        sys.exit("no launch form on /studio/ (is a round already running?)")
    pid = m.group(2)
    fields = dict(re.findall(rf'name="(p{pid}-[a-z_]+)"[^>]*value="([^"]*)"', studio))
    started = time.monotonic()
    page = admin.post(m.group(1), fields, "/studio/")
    number = re.search(r"round (\d+)</h1>", page).group(1)
    round_url = re.search(r'action="(/studio/rounds/\d+)/cancel/"', page)
    round_path = round_url.group(1) + "/" if round_url else None
    status = "queued"
    while True:
        page = admin.get(round_path) if round_path else page
        status = re.search(r'id="round-status">([^<]+)<', page).group(1)
        if status in ("done", "failed", "cancelled"):
            break
        time.sleep(5)
    elapsed = time.monotonic() - started
    print(f"round {number}: {status} in {elapsed:.0f} s")
    if status != "done":
        print(re.search(r'<pre class="err">(.*?)</pre>', page, re.S).group(1))
        sys.exit(1)
    page = annotator.get("/annotate/")
    print("annotator sees a comparison:", 'id="response-left"' in page)


if __name__ == "__main__":
    main()
