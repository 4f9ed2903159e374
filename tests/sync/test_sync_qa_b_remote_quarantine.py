"""QA 7: quarantine list / show / resubmit when the hub is a separate `sync hub serve` process.

The entry is read from the consolidated database the hub process serves (`--hub DB`, a path
or PostgreSQL URL reachable from the operator's host); the corrected row travels like every
batch, signed by the agency, over the pipeline's own transport (here HTTP to the process).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from crashtools import Drill

from lienthong.errors import InputError
from lienthong.sync.pipeline import load_pipeline
from lienthong.sync.quarantine import get_quarantine, list_quarantine, resubmit
from lienthong.sync.runtime import open_agency


def test_resubmit_through_a_hub_process(tmp_path: Path) -> None:
    drill = Drill(tmp_path, rows=200, batch_size=100)
    drill.setup()
    try:
        drill.start_hub()
        pipeline = load_pipeline(drill.pipeline)
        agency = open_agency(pipeline)
        try:
            report = agency.run()
        finally:
            agency.close()
        assert report.error is None and report.quarantined == 4
        hub_db = str(tmp_path / drill.hub_db)
        entries = list_quarantine(hub_db)
        assert [e["source_key"] for e in entries] == ["7", "57", "107", "157"]
        first = entries[0]["id"]
        with pytest.raises(InputError, match=r"separate hub process: give .*--hub DB"):
            resubmit(pipeline, first, {"ngay_sinh": "08/08/1957"})
        done = resubmit(pipeline, first, {"ngay_sinh": "08/08/1957"}, hub=hub_db)
        assert done["applied"] == 1 and done["error"] is None
        assert get_quarantine(hub_db, first)["closed"] == "resubmitted"
        assert len(list_quarantine(hub_db)) == 3
        db = sqlite3.connect(hub_db)
        try:
            (data,) = db.execute("SELECT data FROM c_citizen WHERE source_key = '7'").fetchone()
        finally:
            db.close()
        assert orjson.loads(data)["date_of_birth"] == "1957-08-08"
        # the same through the CLI: --hub names the hub process's database
        second = entries[1]["id"]
        cli = subprocess.run(
            [sys.executable, "-m", "lienthong", "sync", "quarantine", "resubmit",
             str(drill.pipeline), str(second), "--set", "ngay_sinh=09/09/2007",
             "--hub", hub_db, "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert orjson.loads(cli.stdout)["applied"] == 1
        assert get_quarantine(hub_db, second)["closed"] == "resubmitted"
    finally:
        drill.stop()
