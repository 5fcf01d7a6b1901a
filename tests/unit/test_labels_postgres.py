"""The label store on PostgreSQL under concurrency: 8 writer processes lose nothing, a SIGKILLed
writer loses no acknowledged event, two kernels labeling one pool with 20 % overlap get the right
counts. A throw-away server (tests/postgres_server.py); skipped only without its binaries."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench import Catalog
from workbench.labels import LabelStore
from workbench.quality.assignment import open_pool

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["cat", "dog"]


def _run(script, *args):
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
def url(pg_server):
    return pg_server.new_database()


WRITER = r"""
import sys, time
from workbench.labels import LabelStore
url, k, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = LabelStore(url)
print("ready", flush=True)
sys.stdin.readline()  # every writer starts at once
ids = [store.label(f"p{k}-{i}", ("cat", "dog")[i % 2], annotator=f"w{k}") for i in range(n)]
assert ids == sorted(ids)
print(f"{store.retries} retries", flush=True)
"""


def test_eight_processes_write_20000_events_none_lost(url):
    LabelStore(url).add_classes(CLASSES)
    n, m = 2500, 8
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(k), str(n)], cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for k in range(m)
    ]  # fmt: skip
    for p in procs:
        assert p.stdout.readline() == b"ready\n", p.stderr.read().decode()[-2000:]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out + err).decode()[-3000:]
    s = LabelStore(url)
    assert s.events_count("label") == m * n
    cur = s.current()
    expect = {(f"w{k}", f"p{k}-{i}") for k in range(m) for i in range(n)}
    assert set(zip(cur["annotator"], cur["id"], strict=True)) == expect
    assert len(set(s.history(kind="label")["event"])) == m * n  # no id handed out twice


LABELER = r"""
import sys
from workbench.labels import LabelStore
store = LabelStore(sys.argv[1])
i = 0
while True:
    eid = store.label(f"s{i}", ("cat", "dog")[i % 2], annotator="child", seconds=0.5)
    sys.stdout.write(f"{eid}\n")  # acknowledged: label() returned, so the event is committed
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.parametrize("kill_after", [5, 50, 200])
def test_every_acknowledged_event_survives_sigkill(url, kill_after):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kill_after += rng.randrange(5)
    LabelStore(url).add_classes(CLASSES)
    proc = _run(LABELER, url)
    acked = []
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= kill_after:
            break
    assert len(acked) >= kill_after, proc.stderr.read().decode()[-2000:]
    time.sleep(rng.uniform(0, 0.008))  # land the kill anywhere, often inside a commit
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    acked += [int(x) for x in proc.stdout.read().split(b"\n")[:-1]]  # complete lines only
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    after = LabelStore(url)  # the server rolled back the killed writer's open transaction
    stored = set(after.history(kind="label")["event"])
    lost = sorted(set(acked) - stored)
    assert not lost, f"seed {seed}: acknowledged events lost: {lost[:10]}"
    assert len(stored) - len(acked) <= 1  # at most the one committed but not yet printed
    after.label("again", "cat", annotator="parent")
    assert after.events_count("label") == len(stored) + 1


KERNEL = r"""
import sys
from workbench import Catalog
from workbench.labels import LabelStore
from workbench.labels.session import LabelingSession
url, root, who = sys.argv[1], sys.argv[2], sys.argv[3]
catalog = Catalog.from_folder(root, labels=None, progress=False, workers=1)
session = LabelingSession(catalog, LabelStore(url, catalog=catalog), annotator=who, lease=120)
print("ready", flush=True)
sys.stdin.readline()
n = 0
while session.current is not None:
    session.submit(("cat", "dog")[n % 2])
    n += 1
print(n, flush=True)
"""


def test_two_kernels_label_one_pool_with_20_percent_overlap(url, tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(50):
        Image.fromarray(np.full((4, 4), i * 5, np.uint8)).save(root / f"{i:03d}.png")
    catalog = Catalog.from_folder(root, labels=None, progress=False, workers=1)
    store = LabelStore(url, catalog=catalog)
    store.add_classes(CLASSES)
    plan = open_pool(store, catalog, overlap=0.2, per_item=2, seed=5)
    procs = [
        subprocess.Popen([sys.executable, "-c", KERNEL, url, str(root), who], cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for who in ("ana", "bo")
    ]  # fmt: skip
    for p in procs:
        assert p.stdout.readline() == b"ready\n", p.stderr.read().decode()[-2000:]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, (out + err).decode()[-3000:]
    done = [int(out.decode().split()[-1]) for out, _ in outs]
    cur = store.current()
    per_item = cur.groupby("id")["annotator"].nunique()
    assert dict(per_item) == dict(zip(plan["id"], plan["overlap"], strict=True))
    assert int((per_item == 2).sum()) == 10  # 20 % of 50
    assert len(cur) == sum(done) == 60
    assert all(d > 0 for d in done)  # both kernels did work
