"""Small drawing helpers shared by the pages: model cards and choices, result captions, downloads, use buttons."""

from __future__ import annotations

import json
import re

import pandas as pd
import streamlit as st

from core.ceilings import Ceilings
from core.findings import findings_table
from core.interval import MIN_BATCHES
from core.names import BY_DEPTH, side_labels
from core.report import report_csv, report_json
from core.result import AnalysisResult
from core.rules import in_words
from models import NORMALISATIONS, ModelInfo, ModelSpec, SpecChoices
from ui import readings, verdicts
from ui.choices import use
from ui.figure import Figure
from ui.text import code, plain


def _percent_or_number(value: float) -> str:
    return f"{value:.1%}" if 0 <= value <= 1 else f"{value:g}"


def model_card(info: ModelInfo, heading: str) -> None:
    """What a loaded network is: architecture, method, source, measured accuracy, normalisation, loader notes."""
    arch = info.arch
    head = f"{info.num_classes}-way classifier (fc)" if info.num_classes else "no classifier: pooled features"
    metrics = ", ".join(f"{k.replace('_', ' ')} {_percent_or_number(v)}" for k, v in info.metrics.items())
    rows = {
        "source": code(info.source),
        "architecture": (
            f"{arch.name}, {info.stem} stem (padding {arch.stem_padding}); {head}"
            if hasattr(arch, "stem_padding")
            else f"{code(arch.name)}; {head.removesuffix(' (fc)')}"
        ),
        "input": input_text(info),
        "method": plain(info.method),
        "weights sha256": f"`{info.sha256[:16]}…`, of the tensors loaded (names, shapes, values): one network, one "
        "digest, whatever file holds it",
        "measured here": info.calibration.summary if info.calibration else "not measured (no CIFAR-10 test images)",
        "reported by its source": metrics or "nothing",
        "normalisation": f"mean {tuple(round(m, 4) for m in info.mean)}, std {tuple(round(s, 4) for s in info.std)}",
        "layers read": f"{len(info.layers)} ({info.layers[0][0]} … {info.layers[-1][0]})",
    }
    lines = [f"| {k} | {v} |" for k, v in rows.items()]
    st.markdown(f"#### {heading}\n" + "\n".join([lines[0], "|---|---|", *lines[1:]]))  # the source heads the table
    evidence = info.calibration
    if evidence and evidence.warning:
        st.warning(f"{heading}: {plain(evidence.warning, 600)}.")
    if evidence and evidence.scores:
        with st.expander("What the weights cannot say: each candidate's score"):
            st.caption(
                f"Scored by {evidence.measure} on CIFAR-10 test images: the starting choice on all {evidence.images}, "
                "the others on the first half; a candidate that leads there is scored on all of them, and replaces "
                "the starting choice only if it wins by more than two standard errors. Change any choice below."
            )
            st.dataframe(
                [{"candidate": label, "score": value, "images": n} for label, value, n in evidence.scores],
                hide_index=True,
                column_config={"score": st.column_config.NumberColumn(format="percent")},
            )
    if info.notes:
        st.caption("Loader notes: " + "; ".join(plain(note, 600) for note in info.notes) + ".")


def input_text(info: ModelInfo) -> str:
    """How CIFAR-10 images reach the network: '224x224 px, bicubic resize (...)'; mean and std are on their own row."""
    config = info.input_config
    if info.input is None:
        return "32x32 px, CIFAR-10 images as they are"
    crop = (
        f" (its own evaluation crops {config.crop_pct:.0%}; CIFAR images are resized whole)" if config.crop_pct else ""
    )
    return f"{config.size[0]}x{config.size[1]} px, {config.interpolation} resize{crop}"


POOL_LABELS = {None: "as measured", True: "yes", False: "no"}


def choice_form(spec: ModelSpec, info: ModelInfo, side: str) -> None:
    """Override what the weights cannot say (max-pool, stem padding, normalisation) for model A or B."""
    chosen = spec.choices
    cifar = info.arch.stem == "cifar"
    norms = [None, *NORMALISATIONS]
    with st.form(f"choices_{side}"):
        st.caption("What the weights cannot say: keep what was measured (or what the source states), or set it.")
        st.selectbox(
            "Max-pool after the 3x3 stem",
            list(POOL_LABELS),
            format_func=POOL_LABELS.__getitem__,
            index=list(POOL_LABELS).index(chosen.pool),
            disabled=not cifar,
            key=f"choice_{side}_pool",
        )
        st.selectbox(
            "Stem padding",
            PADDINGS,
            format_func=lambda p: "as measured" if p is None else str(p),
            index=PADDINGS.index(chosen.padding),
            disabled=not cifar,
            key=f"choice_{side}_padding",
        )
        st.selectbox(
            "Input normalisation",
            norms,
            format_func=lambda n: "as measured" if n is None else n,
            index=norms.index(chosen.norm),
            key=f"choice_{side}_norm",
        )
        st.form_submit_button(f"Apply to model {side.upper()}", on_click=_apply_choices, args=(side, spec))


PADDINGS = [None, 0, 1, 2, 3]


def _apply_choices(side: str, spec: ModelSpec) -> None:
    s = st.session_state
    chosen = SpecChoices(s[f"choice_{side}_pool"], s[f"choice_{side}_padding"], s[f"choice_{side}_norm"])
    use(side, spec.with_choices(chosen))


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_")[:60]


def download_buttons(result: AnalysisResult, ceilings: Ceilings | None = None, figure: Figure | None = None) -> None:
    """The full result (with its ceilings and findings table, when given) as long-format CSV and as JSON, and the
    page's figure as SVG when given."""
    name = f"cka-{_slug(result.model_a.source)}-vs-{_slug(result.model_b.source)}"
    ceilings = ceilings or Ceilings()
    body = json.dumps(report_json(result, ceilings), indent=1)
    files = [("Download CSV", report_csv(result, ceilings), "csv", "text/csv")]
    files.append(("Download JSON", body, "json", "application/json"))
    if figure is not None:
        files.append(("Download the figure (SVG)", figure.svg, "svg", "image/svg+xml"))
    for column, (label, data, suffix, mime) in zip(st.columns(len(files)), files, strict=True):
        column.download_button(label, data, f"{name}.{suffix}", mime, on_click="ignore", width="stretch")


def result_caption(result: AnalysisResult) -> None:
    """One line saying what was measured on what, and how long it took."""
    spec, o = result.subset, result.options
    estimator = "debiased" if o.debiased else "biased (inflated for wide features)"
    kernel = "linear" if o.kernel == "linear" else f"RBF (σ = {o.sigma:g} × median distance)"
    took = ", ".join(f"{plain(k, 40)} {v:.1f} s" for k, v in result.seconds.items())
    st.caption(
        f"A = {code(result.model_a.source)}, B = {code(result.model_b.source)} · {result.used_images:,} {spec.split} "
        "images "
        f"({len(spec.classes)} classes × {spec.per_class}, subset seed {spec.seed}) · {estimator} {kernel} CKA over "
        f"minibatches of {o.batch_size} · computed in: {took}"
    )
    batches = o.batch_count(result.used_images)
    if batches < MIN_BATCHES:
        st.info(
            f"No 95% interval is drawn: {result.used_images:,} images in minibatches of {o.batch_size} make {batches}, "
            f"and an interval from fewer than {MIN_BATCHES} minibatches would not hold its level. Choose a minibatch "
            f"of at most {result.used_images // MIN_BATCHES} images in the sidebar."
        )


def use_buttons(spec: ModelSpec) -> None:
    """'Use as model A' / 'Use as model B' for a loaded spec."""
    left, right = st.columns(2)
    for column, side in ((left, "a"), (right, "b")):
        column.button(
            f"Use as model {side.upper()}", key=f"use_{side}_{spec}", on_click=use, args=(side, spec), width="stretch"
        )


def ceiling_notes(result: AnalysisResult, ceilings: Ceilings) -> None:
    """Say plainly which model has no ceiling and why (a missing other seed is not an error)."""
    for label, side in zip(side_labels(result.model_a.method, result.model_b.method), "ab", strict=True):
        ceiling, note = ceilings.side(side)
        if ceiling is None:
            st.caption(
                f"No ceiling for {plain(label)}: {plain(note, 600)}. The sidebar can name another seed of its method."
            )


def reference_notes(result: AnalysisResult) -> None:
    """Say plainly what A vs B is not drawn against here: no untrained floor (an older result, or one made without
    it), fewer init pairs than usual, or no other seeds (then there is no seed spread)."""
    if not result.floor_method:
        st.caption(
            "No untrained floor in this result: it was made without one (an older result file, or one made with "
            "--floor-pairs 0), so A vs B is read here against its ceilings only. The grey band is an independence "
            "check, not a floor."
        )
    elif result.floor_note:
        st.caption(f"The floor rests on {plain(result.floor_note)}.")  # a result file's words, shown as text
    if not result.seed_pairings:
        st.caption(
            "No seed spread: one network per method, so A vs B speaks of these two networks only. The sidebar can "
            "name another seed of either method."
        )


def verdict_table(result: AnalysisResult, ceilings: Ceilings) -> None:
    """The study's findings, what this pair shows and the verdict of each as a badge (its word, which carries the
    meaning, on a colour that helps to scan), then the rules every verdict and one-line finding reads, in words."""
    rows = pd.DataFrame(
        [
            {"finding": f.key, "the study reported": f.study, "this pair shows": f.shows, "verdict": f.verdict}
            for f in findings_table(result, ceilings)
        ]
    )
    st.table(rows.style.map(verdicts.badge_style, subset=["verdict"]))
    st.markdown("**How the verdicts and the lines above are decided**\n" + "\n".join(f"- {r}" for r in in_words()))


def note(text: str | None) -> None:
    """A caption of one of ui.readings' notes, when the result calls for it (None: nothing to say)."""
    if text:
        st.caption(text)


def pairing_table(result: AnalysisResult) -> None:
    """Across architectures paired by relative depth, which layer of B each of A's matched layers is compared with
    (in a closed expander); nothing when layers are paired by name."""
    if result.matching != BY_DEPTH:
        return
    with st.expander("Which layer of B each of A's layers is compared with"):
        st.table(pd.DataFrame(readings.pairing_rows(result)))
