"""Decisions: append-only events in the workspace; durable on return; old CSV files read in."""

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from workbench import Workspace
from workbench.clean import Decisions as ReExported
from workbench.decisions import Decisions
from workbench.errors import ParameterError, WorkbenchError

REPO = Path(__file__).resolve().parents[2]

DECIDER = r"""
import sys
from workbench import Workspace
from workbench.clean import Decisions as ReExported
from workbench.decisions import Decisions
d = Decisions(Workspace(sys.argv[1]))
i = 0
while True:
    action = ("exclude", "keep")[(i // 3) % 2]
    d.record([f"s{i % 5}", f"t{i}"], action, issue="dark", note=str(i))
    sys.stdout.write(f"{i}\n")  # acknowledged: record() returned, so the decision is committed
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.parametrize("kill_after", [3, 40])
def test_every_acknowledged_decision_survives_sigkill(tmp_path, kill_after):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kill_after += rng.randrange(4)
    ws = Workspace(tmp_path / "ws")
    proc = subprocess.Popen(
        [sys.executable, "-c", DECIDER, str(ws.path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
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
    con = sqlite3.connect(ws.file("decisions"))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    after = Decisions(ws)
    h = after.history()
    stored = {int(n) for n in h["note"]}
    lost = sorted(set(acked) - stored)
    assert not lost, f"seed {seed}: acknowledged decisions lost: {lost[:10]}"
    assert len(stored) - len(acked) <= 1  # at most the one committed but not yet printed
    assert (h.groupby("note").size() == 2).all()  # a batch is whole or absent
    last = max(stored)  # the latest decision per id wins, on reopening too
    for k in range(5):
        mine = [j for j in stored if j % 5 == k]
        if mine:
            assert after.current()[f"s{k}"] == ("exclude", "keep")[(max(mine) // 3) % 2]
    assert after.current()[f"t{last}"] == ("exclude", "keep")[(last // 3) % 2]
    after.exclude(["again"])  # the store opens and takes writes after the crash
    assert "again" in Decisions(ws).excluded


def test_latest_decision_wins_and_reads_back(tmp_path):
    ws = Workspace(tmp_path / "ws")
    d = Decisions(ws)
    assert d.history().empty and d.current() == {} and not ws.has("decisions")
    assert d.record([], "exclude") == 0
    assert d.exclude(["a", "b", "c"], issue="dark", note="too dark") == 3
    assert d.keep(["b"]) == 1
    d.exclude(["b"])
    d.keep(["c"])
    again = Decisions(ws)
    assert again.current() == {"a": "exclude", "b": "exclude", "c": "keep"}
    assert again.excluded == {"a", "b"}
    h = again.history()
    assert list(h.columns) == list(Decisions.COLUMNS) and len(h) == 6
    assert h["id"].tolist() == ["a", "b", "c", "b", "b", "c"]
    assert h.iloc[0][["action", "issue", "note"]].tolist() == ["exclude", "dark", "too dark"]
    assert all(isinstance(v, str) for v in h.to_numpy().ravel())  # as the CSV store gave them
    assert float(h["ts"].iloc[0]) == pytest.approx(time.time(), abs=60)
    other = Decisions(ws)  # two writers on one workspace see each other's decisions
    other.keep(["a"])
    assert d.excluded == {"b"}
    with pytest.raises(ParameterError, match="'exclude' or 'keep'"):
        d.record(["x"], "delete")
    assert len(Decisions(ws).history()) == 7  # the refused call wrote nothing


def test_without_a_workspace_decisions_live_in_memory():
    d = Decisions()
    d.exclude(["a", "b"])
    d.keep(["a"])
    assert d.excluded == {"b"} and len(d.history()) == 3
    assert Decisions().history().empty


def test_rows_are_never_updated_or_deleted(tmp_path):
    ws = Workspace(tmp_path / "ws")
    Decisions(ws).exclude(["a"])
    con = sqlite3.connect(ws.file("decisions"))
    for sql in ("UPDATE decisions SET action = 'keep'", "DELETE FROM decisions"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.close()
    assert Decisions(ws).excluded == {"a"}


def test_an_old_decisions_csv_is_read_in_once(tmp_path):
    ws = Workspace(tmp_path / "ws")
    old = ws.file("decisions").with_suffix(".csv")  # what earlier versions wrote
    pd.DataFrame(
        {"ts": ["1700000000.5", "1700000001.25", "1700000002.0"], "id": ["a", "b", "a"],
         "action": ["exclude", "exclude", "keep"], "issue": ["dark", "", ""],
         "note": ["", "x, y", ""]}
    ).to_csv(old, index=False)  # fmt: skip
    before = old.read_bytes()
    d = Decisions(ws)
    assert d.excluded == {"b"}
    h = d.history()
    assert h["ts"].tolist() == ["1700000000.5", "1700000001.25", "1700000002.0"]
    assert h["note"].tolist() == ["", "x, y", ""]
    d.exclude(["a"])  # newer than anything in the CSV: it wins
    for _ in range(2):  # reopening does not read the CSV in again
        assert len(Decisions(ws).history()) == 4 and Decisions(ws).excluded == {"a", "b"}
    assert old.read_bytes() == before  # left in place, untouched


def test_an_unreadable_store_is_a_clear_error(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.file("decisions").write_bytes(b"this is not a database" * 100)
    with pytest.raises(WorkbenchError, match="fix or remove it"):
        Decisions(ws).current()
    ws2 = Workspace(tmp_path / "ws2")
    ws2.file("decisions").with_suffix(".csv").write_text("ts,id\n1,2\n")  # no action column
    with pytest.raises(WorkbenchError, match=r"decisions\.csv cannot be read"):
        Decisions(ws2).current()


def test_the_old_import_path_still_works():
    assert ReExported is Decisions


@pytest.mark.parametrize("on_disk", [True, False])
def test_keep_all_on_a_group_restores_only_that_issues_exclusions(tmp_path, on_disk):
    # the notebook excluded blanks for low_information; a near-duplicate group holds 2 of them
    d = Decisions(Workspace(tmp_path / "ws")) if on_disk else Decisions()
    d.exclude(["blank1", "blank2", "elsewhere"], issue="low_information")
    group = ["keeper", "blank1", "blank2", "x", "y"]
    assert d.exclude_new(group[1:], issue="near_duplicate") == ["x", "y"]
    assert d.excluded == {"blank1", "blank2", "elsewhere", "x", "y"}
    assert d.restore(group, issue="near_duplicate") == ["x", "y"]  # "keep all"
    assert d.excluded == {"blank1", "blank2", "elsewhere"}  # as before the group's buttons
    reason = ("low_information", "")
    assert d.excluded_for() == dict.fromkeys(["blank1", "blank2", "elsewhere"], reason)
    assert d.restore(group, issue="near_duplicate") == []  # nothing left of its own: no rows
    assert len(d.history()) == 7


def test_restore_takes_back_an_exclusion_only_while_it_is_the_latest(tmp_path):
    d = Decisions(Workspace(tmp_path / "ws"))
    d.exclude(["a", "b", "c"], issue="near_duplicate", note="group a")
    Decisions(Workspace(tmp_path / "ws")).exclude(["b"], issue="dark")  # b: now for dark
    d.exclude(["p"], issue="near_duplicate")  # in code, for a pair: same issue, no group
    assert d.restore(["a", "b", "p"], issue="near_duplicate", note="group a") == ["a"]
    assert d.excluded_for() == {
        "b": ("dark", ""), "c": ("near_duplicate", "group a"), "p": ("near_duplicate", "")
    }  # fmt: skip
    assert d.state()["a"] == ("keep", "near_duplicate", "group a")


def test_listeners_hear_every_object_on_the_same_store(tmp_path, caplog):
    ws = Workspace(tmp_path / "ws")
    heard = []
    d = Decisions(ws)
    d.on_change(lambda action, ids: heard.append((action, ids)))
    Decisions(ws).exclude(["a"], issue="dark")  # e.g. a notebook cell
    Decisions(ws).keep(["a"])
    Decisions(Workspace(tmp_path / "other")).exclude(["z"])  # another store: not heard
    assert heard == [("exclude", ["a"]), ("keep", ["a"])]
    memory = Decisions()
    memory.on_change(lambda action, ids: heard.append(("memory", ids)))
    memory.exclude(["m"])
    Decisions().exclude(["n"])  # another in-memory store
    assert heard[-1] == ("memory", ["m"])

    def broken(action, ids):
        raise RuntimeError("listener bug")

    d.on_change(broken)
    assert d.exclude(["b"]) == 1  # recorded and reported, whatever the listener did
    assert "b" in Decisions(ws).excluded and "listener bug" in caplog.text


def test_a_bound_method_listener_does_not_keep_its_object_alive(tmp_path):
    import gc
    import weakref

    class View:
        calls = 0

        def changed(self, action, ids):
            View.calls += 1

    ws = Workspace(tmp_path / "ws")
    v = View()
    Decisions(ws).on_change(v.changed)
    Decisions(ws).exclude(["a"])
    alive = weakref.ref(v)
    del v
    gc.collect()
    assert alive() is None
    Decisions(ws).exclude(["b"])
    assert View.calls == 1
