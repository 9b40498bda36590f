"""Start-up: ``streamlit run app.py`` → first page served, first page run, models ready.

``python -m core.bench.startup [--runs 3] [--json out.json]``

Each run starts a fresh server process on a free port with an empty temporary
``VC_DATA_DIR`` (so the speech model's language model is built, as on a first start)
and times, from the launch:

* **page served**: ``GET /`` answers 200 (the app shell; Streamlit serves it before any
  Python page code runs);
* **first page run**: a client session (the websocket a browser opens, asking for the
  default page, Live) receives ``script_finished``: services are built (store, pack,
  KB index, speech recogniser) and the page is on screen;
* **models ready**: a separate fresh process does what the app starts in the background
  for the copilot (sentence model + semantic KB, intent model, disposition labels) and
  reports when all three are ready. The server has no endpoint that says so, hence the
  separate process; it includes Python start-up and imports, as the server's would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.report import emit

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.05
SERVER_TIMEOUT_S = 180.0
MODELS_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


# Streamlit's client protocol, by protobuf field number (core never imports streamlit):
# BackMsg.rerun_script (11) with an empty ClientState asks for the default page, and
# ForwardMsg.script_finished (6) says its script has run.
RERUN_DEFAULT_PAGE = bytes([11 << 3 | 2, 0])
SCRIPT_FINISHED_FIELD = 6


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _top_level_fields(data: bytes) -> list[int]:
    """Field numbers present at the top level of a serialised protobuf message."""
    fields, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            size, i = _varint(data, i)
            i += size
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        fields.append(key >> 3)
    return fields


async def _first_run(port: int, timeout_s: float) -> None:
    """Open a client session and wait for the default page's script to finish."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=[Subprotocol("streamlit")],
                       max_size=None, open_timeout=timeout_s) as ws:
        await ws.send(RERUN_DEFAULT_PAGE)
        async with asyncio.timeout(timeout_s):
            async for raw in ws:
                if isinstance(raw, bytes) and SCRIPT_FINISHED_FIELD in _top_level_fields(raw):
                    return


def server_run(timeout_s: float = SERVER_TIMEOUT_S) -> dict[str, float]:
    """One fresh server: seconds from launch to page served and to first page run."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VC_DATA_DIR": tmp, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not _get_ok(f"http://127.0.0.1:{port}/"):
                if proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                    raise RuntimeError("streamlit did not serve the page")
                time.sleep(POLL_S)
            served = time.monotonic() - t0
            asyncio.run(_first_run(port, timeout_s))
            first_run = time.monotonic() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"page_served_s": served, "first_page_run_s": first_run}


def models_run(timeout_s: float = MODELS_TIMEOUT_S) -> dict[str, float]:
    """A fresh process: seconds from launch to services built and to all models ready."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "VC_DATA_DIR": tmp}
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-m", "core.bench.startup", "--models-child", repr(t0)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _models_child(launched: float) -> None:
    from core.config import load_settings
    from core.ops.background import BackgroundModel
    from core.services import build_services

    services = build_services(load_settings())
    built = time.time() - launched
    intent = services.intent_model()
    assert isinstance(intent, BackgroundModel)
    models = [services.start_semantic_search(), intent, services.disposition_model()]
    for m in models:
        m.wait(MODELS_TIMEOUT_S)
    ready = time.time() - launched
    if not all(m.ready for m in models):
        raise SystemExit(f"a model failed: {[m.error for m in models]}")
    print(json.dumps({"services_built_s": built, "models_ready_s": ready}))


def run(runs: int = 3) -> dict[str, Any]:
    server = [server_run() for _ in range(runs)]
    models = [models_run() for _ in range(runs)]

    def med(rows: list[dict[str, float]], key: str) -> float:
        return float(np.median([r[key] for r in rows]))

    return {
        "runs": runs,
        "page_served_s": med(server, "page_served_s"),
        "first_page_run_s": med(server, "first_page_run_s"),
        "services_built_s": med(models, "services_built_s"),
        "models_ready_s": med(models, "models_ready_s"),
        "all": {"server": server, "models": models},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--models-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.models_child is not None:
        _models_child(args.models_child)
        return 0
    r = run(args.runs)
    emit(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
