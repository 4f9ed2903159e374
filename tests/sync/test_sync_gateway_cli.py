"""The operator path through the gateways: `sync keys init`, `sync hub serve --client` as its own
process behind the hub's gateway, and `sync run` on a pipeline file with [transport]; plus the
precise one-line errors of a bad [transport] table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crashtools import PASS_ENV, write_pipeline
from synctools import SOURCE_ID, make_sqlite_source

from lienthong.exchange.processes import Running, wait_port
from lienthong.exchange.testbed import (
    CONGTT,
    HUB_NODE,
    SVC_SYNC,
    SYNC_AGENCIES,
    build_testbed,
    sync_spec,
)
from lienthong.ports import free_port
from lienthong.sync.__main__ import main

CLIENT = SYNC_AGENCIES["BHXH-GW"][1]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return int(done.value.code or 0), out.out, out.err


def transport_table(url: str, **extra: str) -> str:
    lines = ["[transport]", 'kind = "gateway"', f'url = "{url}"', f'service = "{SVC_SYNC}"',
             f'client = "{CLIENT}"']  # fmt: skip
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def with_transport(tmp: Path, table: str, keep_hub: bool = False) -> Path:
    path = write_pipeline(tmp, 1, 100)
    text = path.read_text()
    if not keep_hub:
        text = text.replace('[hub]\nurl = "http://127.0.0.1:1"\n', "")
    path.write_text(text.replace("[keys]\n", table + "\n[keys]\n"))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASS_ENV, "gateway-cli-passphrase")
    monkeypatch.chdir(tmp_path)
    make_sqlite_source(tmp_path / "source.db", 300)
    return tmp_path


@pytest.fixture
def hub_behind_gateways(workdir: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    """Keys, the hub process and three gateways; yields the agency gateway's URL."""
    code, _, err = cli(capsys, "keys", "init", "keys", "--passphrase-env", PASS_ENV)
    assert code == 0, err
    port = free_port()
    tb = build_testbed(
        workdir / "federation",
        sync_spec(f"http://127.0.0.1:{port}/sync/v1", agencies=("BHXH-GW",)),
        message_log="jsonl",
    )
    with (workdir / "hub.log").open("ab") as log:
        hub = subprocess.Popen(
            [sys.executable, "-m", "lienthong.sync", "hub", "serve", "--db", "hub.db", "--keys",
             "keys", "--passphrase-env", PASS_ENV, "--source",
             f"{SOURCE_ID}=keys/agency.pub.pem", "--client", f"{SOURCE_ID}={CLIENT}",
             "--max-level", "SENSITIVE", "--port", str(port)],
            cwd=workdir, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        wait_port(port, proc=hub, log=workdir / "hub.log")
        with Running(tb) as running:
            for node in ("NDXP", HUB_NODE, "BHXH-GW"):
                running.start_gateway(node)
            yield tb.internal_url("BHXH-GW")
    finally:
        hub.terminate()
        hub.wait(timeout=10)


def test_sync_run_through_gateways_to_a_hub_process(
    hub_behind_gateways: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # first as the public portal, which has no access right: refused, batches kept
    with_transport(workdir, transport_table(hub_behind_gateways).replace(CLIENT, CONGTT))
    code, out, err = cli(capsys, "run", "pipeline.toml", "--json")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "gateway refused the sync batch (LT.ACCESS_DENIED): no access right" in err
    code, out, _ = cli(capsys, "status", "pipeline.toml", "--json")
    table = json.loads(out)["tables"]["citizens"]
    assert table["batches_pending"] == 3 and "LT.ACCESS_DENIED" in table["last_error"]
    # then as the sync subsystem: the kept batches go first, all applied once
    with_transport(workdir, transport_table(hub_behind_gateways, purpose="dong-bo-bhyt"))
    code, out, err = cli(capsys, "run", "pipeline.toml", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["read"] == 300 == report["applied"] + report["quarantined"]
    assert report["quarantined"] == 6 and report["pending_batches"] == 0
    code, out, _ = cli(capsys, "status", "pipeline.toml", "--json")
    table = json.loads(out)["tables"]["citizens"]
    assert table["applied"] == 294 and table["last_error"] is None and table["lag_rows"] == 0
    code, out, _ = cli(capsys, "quarantine", "list", "--hub", "hub.db", "--json")
    assert len(json.loads(out)["quarantine"]) == 6  # the hub process wrote them


def test_bad_transport_table_is_one_line_exit_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = (
        '[transport]\nkind = "grpc"\nurl = "127.0.0.1:8080"\nservice = "VN/GOV/X/dong-bo"\n'
        'client = "VN/GOV/G07.BHXH/DONGBO"\npurpose = "đồng bộ"\nretries = 3\n'
    )
    with_transport(workdir, table, keep_hub=True)
    code, out, err = cli(capsys, "run", "pipeline.toml")
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    for expected in (
        "transport.kind: 'grpc' is not one of gateway",
        "transport.url: required, the base URL of the agency's own gateway",
        "transport.service: ",
        "transport.purpose: printable ASCII text",
        "transport.retries: unknown setting",
        "transport: the gateway carries batches to a remote hub; remove the hub table",
    ):
        assert expected in " ".join(err.split()), (expected, err)
    assert "transport.client" not in err


def test_hub_serve_refuses_bad_bindings_and_levels(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "keys", "init", "keys", "--passphrase-env", PASS_ENV)
    args = ["hub", "serve", "--db", "hub.db", "--keys", "keys", "--passphrase-env", PASS_ENV,
            "--source", f"{SOURCE_ID}=keys/agency.pub.pem"]  # fmt: skip
    code, _, err = cli(capsys, *args, "--client", f"{SOURCE_ID}=VN/GOV/G07.BHXH")
    assert code == 2 and "--client" in err and "Traceback" not in err
    code, _, err = cli(capsys, *args, "--client", f"OTHER.SRC={CLIENT}")
    assert code == 2 and "no --source OTHER.SRC=PEM" in err
    code, _, err = cli(capsys, *args, "--max-level", "TOP")
    assert code == 2 and "--max-level" in err and "Traceback" not in err
