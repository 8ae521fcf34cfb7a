"""`python -m ui.serve [streamlit options]`: the app's server, listening once the app's modules are imported (at
most IMPORT_WAIT_S) and warming up behind it.

A fresh `streamlit run` imports torch, torchvision and the app's modules (5 s here), loads the networks and reads
the default result only when the first visitor's script runs. Here a thread of the server's own process (Streamlit's
caches are per process) imports them first, while the server waits (so a page opened at its first answer waits for
no import), at most IMPORT_WAIT_S (so that on a busy machine the first answer still comes within 15 s); once the
server has started, it loads the default networks (their calibrations shipped with the app too) and reads the
default comparison with its ceilings (shipped with the app, ui.shipped; computed when the shipped entries do not
fit this engine), printing each step in the terminal. A visitor arriving meanwhile is served as usual: what the
warm-up has not finished, the visitor's own run waits for or loads, never twice. `make run` and the container use
it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"
PREFIX = "CKA Lens warm-up: "
STEPS = 3
IMPORT_WAIT_S = 8.0  # the server's start waits this long at most for the imports (7-15 s on 2 busy cores, 5 idle)


def say(line: str) -> None:
    print(PREFIX + line, flush=True)


class _OtherThreads(logging.Filter):
    """Lets through every record but those of one thread: Streamlit warns at each cache call the warm-up makes
    outside a script run ("bare mode"); the server's own warnings still show."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


def quiet_streamlit() -> Callable[[], None]:
    """Silence this thread's Streamlit log records (each Streamlit logger has its own handler); returns the undo."""
    quiet = _OtherThreads(threading.get_ident())
    loggers = [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("streamlit") and isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        logger.addFilter(quiet)
    return lambda: [logger.removeFilter(quiet) for logger in loggers]


def after_the_server_starts(timeout_s: float = 30.0) -> None:
    """Wait until Streamlit's runtime has started (the server then takes connections), at most `timeout_s`: the
    warm-up's loading then never holds up the server's own start, which needs the same interpreter."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.runtime import RuntimeState

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (Runtime.exists() and Runtime.instance().state != RuntimeState.INITIAL):
        time.sleep(0.05)


def import_app() -> None:
    """Step 1: import torch and what the app's pages import (7-15 s on 2 busy cores), so that no visitor's run
    waits for them."""
    say(f"step 1 of {STEPS}: importing torch and the app's modules")
    from core import summary  # noqa: F401 - imported to be warm
    from ui import analysis, apology, charts, figure, router, service, shipped, sidebar, text, widgets  # noqa: F401


def warm(imported: threading.Event | None = None) -> None:
    """The whole warm-up in this thread: `import_app`, then (`imported` set, and the server started if one is
    starting) `load_default`."""
    start = time.perf_counter()
    import_app()
    if imported is not None:
        imported.set()
        after_the_server_starts()
    load_default(start)


def load_default(start: float) -> None:
    """Steps 2 and 3: load the default networks into the shared network cache (their calibrations read from the
    store or the shipped entries), and read (or compute) the default comparison and its ceilings into the
    service's memory caches, as a first visitor's Overview asks for them; each step said in the terminal, and
    the time since `start` (perf_counter) at the end."""
    from core.errors import LensError
    from models import CheckpointError
    from ui import shipped

    loud = quiet_streamlit()
    try:
        say(f"step 2 of {STEPS}: loading the default networks (the bundled pair and each one's other seed)")
        default = shipped.default_comparison()
        if default.at_hand():
            say(f"step 3 of {STEPS}: reading the default comparison and its ceilings from the shipped results")
        else:
            say(
                f"step 3 of {STEPS}: computing the default comparison ({default.subset.size} images), its ceilings "
                "and floors: minutes on a CPU (no shipped results for this engine; `make shipped` makes them)"
            )
        default.compute(shipped.printed(PREFIX + "  "))
        say(f"done in {time.perf_counter() - start:.1f} s: the default Overview is ready")
    except (CheckpointError, LensError, OSError) as err:  # the app will say the same to its visitor
        say(f"skipped ({err}); the app computes what a visitor asks for")
    finally:
        loud()


def main() -> int:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    # app.py's st.navigation is the router (ui.router): with the legacy pages/ mode off before the server reads
    # the folder, a first visitor's run is not started twice
    PagesManager.uses_pages_directory = False
    # The imports first, in the warm-up's thread: the server starts once they are done (a page opened at its first
    # answer then waits for none of them), or after IMPORT_WAIT_S if they take longer on a busy machine, so that
    # the first answer still comes within 15 s; the rest of the warm-up runs behind the server.
    imported = threading.Event()
    warm_up = threading.Thread(target=warm, args=(imported,), name="warm-up", daemon=True)
    warm_up.start()
    try:
        imported.wait(IMPORT_WAIT_S)
    except KeyboardInterrupt:
        sys.stdout.flush()
        os._exit(130)  # the interpreter's shutdown would abort the thread inside torch
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    try:
        code = cli.main()
    except SystemExit as stop:
        code = stop.code
    if warm_up.is_alive():  # stopped mid-warm-up: the interpreter's shutdown would abort a thread inside torch
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else int(code is not None))
    return code


if __name__ == "__main__":
    sys.exit(main())
