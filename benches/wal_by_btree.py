#!/usr/bin/env python3
"""Which B-trees the write path dirties, and how much WAL each costs per event.

Runs `parcours serve` on a fresh database in a temporary folder, publishes the 3-node
journey every throughput benchmark runs (benches/journey.yaml), posts WARM events (so that
the tables have a realistic size), then holds a read snapshot open (the WAL can no longer
be started over, so every frame written afterwards stays in it), posts N more events in
requests of 100 from 8 threads over 10,000 profiles, waits until all are processed, and
maps every WAL frame written meanwhile to its B-tree with SQLite's `dbstat`. Each frame is
one page image (page size + 24 bytes); the database file receives the same pages again
at checkpoints, which this does not count. A run during which the engine started its
WAL over (the snapshot, taken just after a checkpoint copied the whole WAL, did not hold
it) is detected by the WAL's salt and tried again on a new database.

Usage: python3 benches/wal_by_btree.py [BINARY] [WARM] [N]
(defaults: target/release/parcours 40000 10000). Needs Python's sqlite3 with dbstat
(Debian's has it). Nothing here is timed: the rate it prints includes polling.
"""

import hashlib
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "target", "release", "parcours")
WARM = int(sys.argv[2]) if len(sys.argv) > 2 else 40_000
N = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
PROFILES = 10_000
PORT = 18099


def main():
    # A run whose WAL was started over measured nothing: up to five tries, each on a
    # new database.
    for _ in range(5):
        folder = tempfile.mkdtemp(prefix="parcours-wal-")
        db = os.path.join(folder, "w.db")
        base = f"http://127.0.0.1:{PORT}"
        log = open(os.path.join(folder, "serve.log"), "w")
        server = subprocess.Popen([BIN, "serve", "--db", db, "--listen", f"127.0.0.1:{PORT}"],
                                  stderr=log)
        try:
            if run(db, base):
                return
        finally:
            server.terminate()
            server.wait()
    sys.exit("the WAL was started over during five runs in a row")


def request(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(base + path, data=data, method=method,
                               headers={"content-type": "application/json"})
    with urllib.request.urlopen(r) as resp:
        return resp.read()


def post(base, lo, hi, tag):
    def one(start):
        # Scattered ids, like the UUIDs clients send.
        request(base, "POST", "/v1/events", [
            {"id": f"{tag}-{hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest()}",
             "type": "order", "profile_id": f"p{i % PROFILES}", "data": {"amount": i % 300}}
            for i in range(start, min(hi, start + 100))])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(lo, hi, 100)))


def drain(db):
    while True:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        # Unprocessed: after the scan position or a hole, and in no unfolded mark
        # (engine/src/store/sqlite/marks.rs).
        left = c.execute(
            "SELECT COUNT(*) FROM events WHERE (seq > COALESCE((SELECT upto FROM event_scan), 0)"
            " OR seq IN (SELECT seq FROM event_holes))"
            " AND seq NOT IN (SELECT value FROM event_marks, json_each(event_marks.seqs))"
        ).fetchone()[0]
        c.close()
        if left == 0:
            return
        time.sleep(0.2)


def frames(db):
    """(page number, commit marker) of every valid frame of the current WAL, the page size
    and the WAL's salt (it changes when the WAL is started over)."""
    data = open(db + "-wal", "rb").read()
    _, _, page_size, _, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    out, off = [], 32
    while off + 24 + page_size <= len(data):
        page, commit, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        out.append((page, commit))
        off += 24 + page_size
    return out, page_size, (salt1, salt2)


def run(db, base):
    for _ in range(150):
        try:
            request(base, "GET", "/healthz")
            break
        except OSError:
            time.sleep(0.2)
    subprocess.run([BIN, "journey", "publish", "--server", base, os.path.join(HERE, "journey.yaml")],
                   check=True, capture_output=True)
    post(base, 0, WARM, "warm")
    drain(db)
    snapshot = sqlite3.connect(db, isolation_level=None)
    snapshot.execute("BEGIN")
    snapshot.execute("SELECT COUNT(*) FROM events").fetchone()
    before, page_size, salt = frames(db)
    started = time.time()
    post(base, WARM, WARM + N, "run")
    drain(db)
    elapsed = time.time() - started
    after, _, salt_after = frames(db)
    snapshot.execute("COMMIT")
    if salt_after != salt:
        # A snapshot taken after a checkpoint copied the whole WAL reads the database
        # file alone and does not hold the WAL: the engine started it over meanwhile.
        print("the WAL was started over during the run (a checkpoint had just ended): again")
        return False
    written = after[len(before):]
    names = dict(sqlite3.connect(db).execute("SELECT pageno, name FROM dbstat"))
    by_tree = {}
    for page, _ in written:
        name = names.get(page, "(freed page)")
        by_tree[name] = by_tree.get(name, 0) + 1
    commits = sum(1 for _, commit in written if commit)
    frame = page_size + 24
    print(f"{N} events after {WARM}, {PROFILES} profiles: {commits} commits, {len(written)} frames, "
          f"{len(written) * frame / N:.0f} B of WAL an event ({N / elapsed:.0f} events/s with polling)")
    print(f"{'B-tree':34} {'frames':>7} {'B/event':>8} {'share':>6}")
    for name, count in sorted(by_tree.items(), key=lambda kv: -kv[1]):
        print(f"{name:34} {count:7d} {count * frame / N:8.0f} {100 * count / len(written):5.1f}%")
    return True


if __name__ == "__main__":
    main()
