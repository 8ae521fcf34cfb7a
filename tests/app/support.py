"""Helpers for the app's tests: the app's path, reading charts out of AppTest, synthetic results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

from core.analysis import AnalysisOptions, AnalysisResult, ModelIdentity
from core.data import SubsetSpec
from models import list_bundled
from models.resnet import ArchConfig, resnet_layers
from ui.names import OUTPUT, RESIDUAL, kind
from ui.state import DEFAULT_A, DEFAULT_B

APP = str(Path(__file__).resolve().parents[2] / "app.py")
REAL_PAIR = {DEFAULT_A, DEFAULT_B} <= {entry.spec for entry in list_bundled()}


def chart_specs(at) -> list[dict]:
    """Every Altair chart on the current page as (spec, {dataset name: DataFrame})."""
    out = []
    for element in at.get("vega_lite_chart"):
        data = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in element.proto.datasets}
        out.append({"spec": json.loads(element.proto.spec), "data": data})
    return out


def chart_values(chart: dict, column: str) -> np.ndarray:
    """All values of one column over a chart's datasets (they are the same table, shared by its layers)."""
    frames = [f for f in chart["data"].values() if column in f]
    return frames[0][column].to_numpy(dtype=float)


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
    matched_cka = np.asarray(values)
    n_a, n_b, m = len(layers_a), len(layers_b), len(layers_a)
    ramp_a, ramp_b = np.linspace(0.1, 0.9, n_a), np.linspace(0.1, 0.95, n_b)
    return AnalysisResult(
        model_a=ModelIdentity("bundled:a", "a" * 64, methods[0], "resnet18"),
        model_b=ModelIdentity("bundled:b", "b" * 64, methods[1], "resnet18"),
        subset=SubsetSpec(per_class=10),
        options=AnalysisOptions(),
        used_images=100,
        layers_a=layers_a,
        layers_b=layers_b,
        cross=np.full((n_a, n_b), 0.5),
        self_a=np.eye(n_a),
        self_b=np.eye(n_b),
        undefined_a=(None,) * n_a,
        undefined_b=(None,) * n_b,
        matched=layers_a,
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
    )
