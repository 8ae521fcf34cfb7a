"""Pages and ui widgets draw; the service and the caches never do. Checked in the source (no cached function draws)
and in a run of the app (a computed and a cached result: every chart drawn outside Streamlit's caches)."""

from __future__ import annotations

import ast
import traceback
from pathlib import Path

from streamlit.testing.v1 import AppTest

import ui.figure
from tests.app.support import APP

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "ui").glob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"])
NOT_DRAWING = {"session_state", "query_params", "cache_data", "cache_resource", "secrets", "context", "rerun"}


def _streamlit_calls(function: ast.AST) -> set[str]:
    """The st.NAME(...) calls in a function's body."""
    return {
        node.func.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "st"
    }


def _called_names(function: ast.AST) -> set[str]:
    """The names a function's body calls, plain (`show(...)`) or as an attribute (`figure.show(...)`)."""
    calls = [node.func for node in ast.walk(function) if isinstance(node, ast.Call)]
    return {f.id for f in calls if isinstance(f, ast.Name)} | {f.attr for f in calls if isinstance(f, ast.Attribute)}


def _functions() -> list[tuple[Path, ast.FunctionDef | ast.ClassDef]]:
    """Every function, method and class of the app's drawing side."""
    return [
        (path, node)
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    ]


def _drawing_helpers(functions: list[tuple[Path, ast.FunctionDef | ast.ClassDef]]) -> set[str]:
    """The names of the functions and classes that put something on the page: those calling Streamlit to draw,
    and those calling any of them, to a fixed point."""
    helpers = {f.name for _, f in functions if _streamlit_calls(f) - NOT_DRAWING}
    while True:
        more = {f.name for _, f in functions if _called_names(f) & helpers} - helpers
        if not more:
            return helpers
        helpers |= more


def _cached(function: ast.FunctionDef) -> bool:
    """Decorated with st.cache_data or st.cache_resource (called with options or not)."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("cache_data", "cache_resource"):
            return True
    return False


def test_no_cached_function_draws_or_calls_a_drawing_helper():
    functions = _functions()
    helpers = _drawing_helpers(functions)
    assert {"show", "watching", "shown_opened", "model_card", "apologise", "with_ceilings"} <= helpers
    cached = [(path, f) for path, f in functions if isinstance(f, ast.FunctionDef) and _cached(f)]
    assert cached  # the networks' shared cache, at least
    for path, function in cached:
        where = f"{path.relative_to(ROOT)}:{function.name}"
        assert not _streamlit_calls(function) - NOT_DRAWING, where
        assert not _called_names(function) & helpers, (where, _called_names(function) & helpers)


def test_the_service_and_the_views_never_import_streamlit():
    for name in ("service", "views"):
        tree = ast.parse((ROOT / "ui" / f"{name}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not {m for m in imported if m.split(".")[0] in ("streamlit", "altair")}, name
        assert not {m for m in imported if m in ("ui.progress", "ui.figure", "ui.widgets", "ui.charts")}, name


def test_computed_and_cached_results_are_drawn_by_the_page_never_inside_a_cache(bundled_pair, monkeypatch):
    drawn: list[dict] = []
    real_show = ui.figure.show

    def recorded(figure):
        files = [frame.filename for frame in traceback.extract_stack()]
        drawn.append(
            {
                "in_cache": any("streamlit/runtime/caching" in name for name in files),
                "by_page": files[-2].endswith("pages/overview.py"),
                "preview": any(name.endswith("ui/progress.py") for name in files),
            }
        )
        return real_show(figure)

    monkeypatch.setattr(ui.figure, "show", recorded)
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"per_class": "10", "batch": "20", "subset_seed": "913"})  # computed: a fresh subset
    at.run()
    assert not at.exception and not at.error
    *previews, final = drawn
    assert previews and all(d["preview"] and not d["by_page"] for d in previews)  # 5 minibatches: previews first
    assert final["by_page"] and not final["preview"]
    assert not any(d["in_cache"] for d in drawn)
    drawn.clear()
    at.run()  # the same choices: every result from the service's caches
    assert not at.exception and not at.error
    assert drawn == [{"in_cache": False, "by_page": True, "preview": False}]
