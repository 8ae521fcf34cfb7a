"""Command line for networks: `python -m models train|list|publish`."""

from models.cli import main

raise SystemExit(main())
