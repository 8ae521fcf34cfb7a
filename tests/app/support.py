"""Helpers for the app's tests: the app's path, reading charts out of AppTest, synthetic results."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from core.data import SubsetSpec
from core.names import BY_DEPTH, OUTPUT, RESIDUAL, kind, match_layers
from core.network import ModelIdentity
from core.options import AnalysisOptions
from core.result import AnalysisResult, SeedPairing
from models.resnet import ArchConfig, resnet_layers
from models.snapshots import bundled_series
from ui.figure import MATCHED_ALT

APP = str(Path(__file__).resolve().parents[2] / "app.py")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


OVERVIEW_CHART = f'img[alt="{MATCHED_ALT}"]'  # the overview's figure (ui.figure), its preview's too
# The Training page opens on the first SimCLR and the first supervised run with snapshots: a heatmap per finished one
_FINALS = sum(
    next((s.final is not None for s in bundled_series() if s.method == m), False) for m in ("simclr", "supervised")
)
# the Vega charts each analysis page draws; Training: the series heatmap, two panels of curves, the finals' heatmaps
PAGE_CHARTS = {"similarity": 5, "probes": 3, "training": 3 + _FINALS}
SERVER_PIDS: dict[str, int] = {}


def together(visits: Iterable[Callable[[object], Awaitable]]) -> list:
    """Run the visits (each a coroutine function taking the browser) at the same moment in one headless Chromium
    (Playwright's async API); their results in order."""

    async def run() -> list:
        from playwright.async_api import async_playwright

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                return await asyncio.gather(*(visit(browser) for visit in visits))
            finally:
                await browser.close()

    return asyncio.run(run())


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: dict[str, str] | None = None, cpus: str | None = None) -> Iterator[str]:
    """A fresh `streamlit run app.py` on a free loopback port; yields its base URL, stops it afterwards. `cpus`
    (taskset's list, e.g. "0") keeps the server and every thread it starts on those cores.

    The server's process id is in `SERVER_PIDS[base]` while it runs (for memory readings)."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        APP,
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    env = os.environ | {"CKA_LENS_THREADS": "1", "HF_HUB_OFFLINE": "1"} | (env or {})
    process = subprocess.Popen(
        command, cwd=Path(APP).parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start: {process.stdout.read()}") from None
                time.sleep(0.2)  # polling the health endpoint, not waiting for the page
        SERVER_PIDS[base] = process.pid
        yield base
    finally:
        SERVER_PIDS.pop(base, None)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # still busy in an analysis thread: it has nothing left to save
            process.kill()
            process.wait(timeout=20)


def chart_specs(at) -> list[dict]:
    """Every Altair chart on the current page as (spec, {dataset name: DataFrame})."""
    out = []
    for element in at.get("vega_lite_chart"):
        data = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in element.proto.datasets}
        out.append({"spec": json.loads(element.proto.spec), "data": data})
    return out


def figure_svgs(at) -> list[str]:
    """Every SVG figure on the current page (a markdown image, `ui.figure`), as its SVG text."""
    out = []
    for element in at.markdown:
        found = re.fullmatch(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", element.value)
        if found:
            out.append(base64.b64decode(found[1]).decode())
    return out


def figures(at) -> list[pd.DataFrame]:
    """Every SVG figure on the current page as its points: series, layer, value."""
    return [figure_points(svg) for svg in figure_svgs(at)]


def figure_points(svg: str) -> pd.DataFrame:
    """The points of an SVG figure (parsed as XML, so a figure that is not well-formed fails here)."""
    circles = [e for e in ET.fromstring(svg).iter() if e.tag.endswith("circle") and e.get("class") == "point"]
    return pd.DataFrame(
        {
            "series": [c.get("data-series") for c in circles],
            "layer": [c.get("data-layer") for c in circles],
            "value": [float(c.get("data-value")) for c in circles],
        }
    )


def figure_ranges(svg: str, cls: str) -> pd.DataFrame:
    """The per-layer ranges an SVG figure draws with class `cls` ('floor': the untrained floor's boxes, 'seeds':
    the seed spread's bars): layer, low, high."""
    found = [e for e in ET.fromstring(svg).iter() if e.get("class") == cls]
    return pd.DataFrame(
        {
            "layer": [e.get("data-layer") for e in found],
            "low": [float(e.get("data-low")) for e in found],
            "high": [float(e.get("data-high")) for e in found],
        }
    )


def chart_values(chart: dict, column: str) -> np.ndarray:
    """All values of one column over a chart's datasets (they are the same table, shared by its layers)."""
    frames = [f for f in chart["data"].values() if column in f]
    return frames[0][column].to_numpy(dtype=float)


def shown(body: object) -> str:
    """What a Markdown body reads as on screen: backslash escapes undone, code spans' backticks dropped."""
    return re.sub(r"\\(.)", r"\1", str(body)).replace("`", "")


def synthetic_result(
    outputs: list[float],
    residuals: list[float],
    *,
    null_p95: float = 0.02,
    methods: tuple[str, str] = ("simclr", "supervised"),
) -> AnalysisResult:
    """A ResNet-18 pair result with the given block-output and residual-branch matched CKA (8 blocks each)."""
    layers_a = tuple(name for name, _ in resnet_layers(ArchConfig(18, num_classes=0)))
    layers_b = tuple(name for name, _ in resnet_layers(ArchConfig(18, num_classes=10)))
    values, it_out, it_res = [], iter(outputs), iter(residuals)
    for name in layers_a:
        values.append(next(it_out) if kind(name) == OUTPUT else next(it_res) if kind(name) == RESIDUAL else 0.9)
    return _synthetic(
        (ModelIdentity("bundled:a", "a" * 64, methods[0], "resnet18"), layers_a),
        (ModelIdentity("bundled:b", "b" * 64, methods[1], "resnet18"), layers_b),
        matched=layers_a,
        matched_cka=np.asarray(values),
        cross=np.full((len(layers_a), len(layers_b)), 0.5),
        null_p95=null_p95,
    )


def _synthetic(a: tuple, b: tuple, *, matched, matched_cka, cross, null_p95: float, **fields) -> AnalysisResult:
    """A result of models `a` and `b` ((identity, layers) each) on 100 test images with these matched layers, matched
    CKA and cross CKA: an interval of +-0.05 around it, the null's mean half its 95th percentile `null_p95`, and
    read-outs rising with depth; `fields` set any other field."""
    (model_a, layers_a), (model_b, layers_b) = a, b
    n_a, n_b, m = len(layers_a), len(layers_b), len(matched)
    ramp_a, ramp_b = np.linspace(0.1, 0.9, n_a), np.linspace(0.1, 0.95, n_b)
    return AnalysisResult(
        model_a=model_a,
        model_b=model_b,
        subset=SubsetSpec(per_class=10),
        options=AnalysisOptions(),
        used_images=100,
        layers_a=layers_a,
        layers_b=layers_b,
        cross=cross,
        self_a=np.eye(n_a),
        self_b=np.eye(n_b),
        undefined_a=(None,) * n_a,
        undefined_b=(None,) * n_b,
        matched=matched,
        matched_cka=matched_cka,
        null_mean=np.full(m, null_p95 / 2),
        null_p95=np.full(m, null_p95),
        interval_low=matched_cka - 0.05,
        interval_high=matched_cka + 0.05,
        class_a=ramp_a * 0.6,
        class_b=ramp_b,
        invariance_a=ramp_a,
        invariance_b=ramp_b * 0.5,
        probe_a=ramp_a,
        probe_b=ramp_b,
        **fields,
    )


def with_synthetic_references(result: AnalysisResult, floor: float = 0.6, spread: float = 0.05) -> AnalysisResult:
    """`result` with an untrained floor (mean `floor`, band `floor` - 0.1 to `floor` + 0.05, 8 init pairs), three
    seed pairings (A x B itself, then its values moved by -`spread` and +`spread`) and trained-vs-untrained
    read-outs, as models.references would add them."""
    m = len(result.matched)
    shifts = (0.0, -spread, spread)
    return replace(
        result,
        floor_untrained=np.full(m, floor),
        floor_untrained_low=np.full(m, floor - 0.1),
        floor_untrained_high=np.full(m, floor + 0.05),
        untrained_a=np.linspace(0.8, 0.2, len(result.layers_a)),
        untrained_b=np.linspace(0.7, 0.05, len(result.layers_b)),
        floor_pairs=8,
        floor_method="untrained networks",
        seed_pairings=tuple(SeedPairing(f"a{k}", "b", result.matched_cka + shift) for k, shift in enumerate(shifts)),
    )


def vit_layers(blocks: int) -> tuple[str, ...]:
    """A ViT's layers as core.blocks names them: the stem, each block's attention and MLP read at the branch and
    after the addition, the final norm, pooled features and logits."""
    readings = ("attention branch", "attention output", "mlp branch", "output")
    body = tuple(f"blocks.{i} {reading}" for i in range(blocks) for reading in readings)
    return ("stem", *body, "final norm", "pooled", "logits")


def synthetic_pair(layers_a: tuple[str, ...], layers_b: tuple[str, ...], **fields) -> AnalysisResult:
    """A result of two models with these layers, their matched layers paired as the engine pairs them
    (core.names.match_layers): CKA rising with depth, no floor or other seeds; `fields` set any other field."""
    pairs, matching = match_layers(layers_a, layers_b)
    cross = np.add.outer(np.linspace(0.1, 0.5, len(layers_a)), np.linspace(0.1, 0.4, len(layers_b)))
    result = _synthetic(
        (ModelIdentity("timm:vit_tiny_patch16_224", "a" * 64, "supervised", "timm:vit_tiny_patch16_224"), layers_a),
        (ModelIdentity("timm:resnet18", "b" * 64, "simclr", "timm:resnet18"), layers_b),
        matched=tuple(layers_a[i] for i, _ in pairs),
        matched_cka=np.array([cross[i, j] for i, j in pairs]),
        cross=cross,
        null_p95=0.02,
        invariance_pooled_a=np.linspace(0.1, 0.9, len(layers_a)),
        invariance_pooled_b=np.linspace(0.1, 0.95, len(layers_b)) * 0.5,
        matching=matching,
        matched_b=tuple(layers_b[j] for _, j in pairs) if matching == BY_DEPTH else (),
    )
    return replace(result, **fields)
