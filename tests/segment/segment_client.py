"""End-to-end check with Segment's own Python client library (segment-analytics-python).

Starts `parcours serve --examples` on a temporary database with a Segment write key,
points the unmodified client at `<engine>/v1/segment`, sends `identify` and `track`
calls, and checks through the API that the profile got its traits, aliases and
audiences, and that the events entered journeys.

    python tests/segment/segment_client.py target/debug/parcours [--plugin-cache DIR]
"""

import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import segment.analytics as analytics

WRITE_KEY = "ci-write-key"


def start_engine(binary, db, plugin_cache):
    args = [binary, "serve", "--examples", "--listen", "127.0.0.1:0", "--db", db,
            "--segment-write-key", WRITE_KEY]
    if plugin_cache:
        args += ["--plugin-cache", plugin_cache]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if "listening on http://" in line:
            base = line.split("listening on ")[1].split()[0]
            # Keep draining the log so the engine never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, base
    raise SystemExit("parcours exited before listening (exit code %s)" % proc.wait())


def get(base, path):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def eventually(check, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = check()
        except Exception:  # the profile may not exist yet
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


def main():
    binary = sys.argv[1]
    plugin_cache = sys.argv[sys.argv.index("--plugin-cache") + 1] if "--plugin-cache" in sys.argv else None
    with tempfile.TemporaryDirectory() as tmp:
        proc, base = start_engine(binary, tmp + "/segment.db", plugin_cache)
        try:
            errors = []
            client = analytics.Client(WRITE_KEY, host=base + "/v1/segment", sync_mode=True,
                                      on_error=lambda e, batch: errors.append(repr(e)))
            client.identify("py-user-1", {"email": "py@example.com", "tier": "gold", "newsletter": True},
                            anonymous_id="py-anon-1")
            client.track(anonymous_id="py-anon-1", event="signup", properties={"first_name": "Py"})
            client.track("py-user-1", "order_placed", {"amount": 42})
            client.flush()
            if errors:
                raise SystemExit("the Segment client reported errors: %s" % errors)

            profile = get(base, "/v1/profiles/py-user-1")
            assert profile["attributes"]["tier"] == "gold", profile
            assert profile["aliases"] == {"anonymous_id": "py-anon-1", "email": "py@example.com"}, profile
            assert profile["audiences"] == ["gold", "newsletter"], profile

            def journeys():
                instances = get(base, "/v1/profiles/py-user-1/instances")["instances"]
                names = {i["journey_id"] for i in instances}
                return names if {"welcome", "gold_welcome", "vip_branch"} <= names else None

            names = eventually(journeys, "the Segment calls to enter journeys")
            welcome = [i for i in get(base, "/v1/profiles/py-user-1/instances")["instances"]
                       if i["journey_id"] == "welcome"][0]
            assert welcome["data"]["event"]["data"]["first_name"] == "Py", welcome
            print("segment client: identify and track entered %s" % sorted(names))

            # Identity stitching: a sign-up tracked anonymously, then the user identifies.
            client.track(anonymous_id="py-anon-2", event="signup", properties={"first_name": "Anon"})
            client.identify("py-user-2", {"email": "py2@example.com"}, anonymous_id="py-anon-2")
            client.flush()
            if errors:
                raise SystemExit("the Segment client reported errors: %s" % errors)
            try:
                get(base, "/v1/profiles/py-anon-2")
                raise SystemExit("the anonymous profile was not merged into py-user-2")
            except urllib.error.HTTPError as e:
                assert e.code == 404, e
            merged = get(base, "/v1/profiles/py-user-2")
            assert merged["aliases"] == {"anonymous_id": "py-anon-2", "email": "py2@example.com"}, merged
            moved = [i for i in get(base, "/v1/profiles/py-user-2/instances")["instances"]
                     if i["journey_id"] == "welcome"]
            assert moved and moved[0]["data"]["event"]["data"]["first_name"] == "Anon", moved
            print("segment client: the anonymous sign-up was merged into the identified user")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
