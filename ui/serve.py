"""`python -m ui.serve [streamlit options]`: the app's server, warm before its first visitor.

A fresh `streamlit run` imports torch, torchvision and the app's modules (5 s here), loads the networks and
reads the default result only when the first visitor's script runs. This imports and loads them first, in the
server's own process (Streamlit's caches are per process), then starts the server, so the first visitor gets
what every later one gets. `make run` and the container use it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def warm() -> None:
    """Import what the app imports, load the default pair into the shared network cache, and read (or compute)
    its default result and ceilings into the service's memory caches and the result store, as a visitor's
    overview asks for them."""
    import logging

    from core.errors import LensError
    from models import DEFAULT_PAIR, CheckpointError
    from ui import analysis, charts, choices, networks, service, sidebar, widgets  # noqa: F401 - imported to be warm

    # the caches are called outside a script run: Streamlit warns at every call that it is in "bare mode"
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            a, b = (networks.load(spec) for spec in DEFAULT_PAIR)
            defaults = {f.name: f.default for f in choices.FIELDS}
            subset, options = choices.subset_and_options(defaults)
            siblings = (analysis.load_sibling(spec, None)[0] for spec in DEFAULT_PAIR)  # the overview's ceilings
            service.pair_with_ceilings(a, b, *siblings, subset, options)
        except (CheckpointError, LensError, OSError) as err:  # the app will say the same to its visitor
            print(f"warm-up skipped: {err}", file=sys.stderr)
        finally:
            logging.disable(logging.NOTSET)


def main() -> int:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    # app.py's st.navigation is the router (ui.router): with the legacy pages/ mode off before the server reads
    # the folder, a first visitor's run is not started twice
    PagesManager.uses_pages_directory = False
    warm()
    sys.argv = ["streamlit", "run", str(APP), *sys.argv[1:]]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
