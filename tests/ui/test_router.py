"""app.py stays the one router: a page run without app.py's frame starts the run again, framed."""

from __future__ import annotations

import threading

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui.router import app_frame, use_app_router


class Rerun(Exception):
    """Stands in for Streamlit's rerun, which ends the run where it is called."""


@pytest.fixture
def reruns(monkeypatch) -> list[bool]:
    """Each rerun asked for, with whether the legacy pages/ mode was already off at that moment."""
    asked: list[bool] = []

    def rerun() -> None:
        asked.append(PagesManager.uses_pages_directory is False)
        raise Rerun

    monkeypatch.setattr(st, "rerun", rerun)
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)
    return asked


def test_a_fresh_servers_first_run_switches_the_pages_folder_off_and_starts_again(reruns, monkeypatch):
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    body = []
    with pytest.raises(Rerun), app_frame():
        body.append("ran")
    assert reruns == [True] and body == []


def test_a_framed_run_draws_its_page_without_a_rerun(reruns):
    with app_frame():
        use_app_router()
        drawn = True
    assert drawn and reruns == []


def test_a_page_run_on_its_own_reruns_with_the_legacy_mode_off(reruns, monkeypatch):
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    with pytest.raises(Rerun):
        use_app_router()
    assert reruns == [True]


def test_the_frame_mark_ends_with_the_run_even_when_the_run_fails(reruns):
    with app_frame():  # the frame apologises for the bug instead of letting it reach the visitor
        raise KeyError("a page failed")
    with pytest.raises(Rerun):
        use_app_router()
    assert reruns == [True]


def test_the_mark_belongs_to_one_sessions_thread(reruns):
    """Two visitors at once: one thread's framed run does not frame another thread's run."""
    outcome = []

    def other_visitor() -> None:
        try:
            use_app_router()
            outcome.append("drawn unframed")
        except Rerun:
            outcome.append("rerun")

    with app_frame():
        thread = threading.Thread(target=other_visitor)
        thread.start()
        thread.join()
        use_app_router()  # this thread's run stays framed
    assert outcome == ["rerun"]
