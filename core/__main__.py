"""`python -m core compare ...` (also under `torchrun`)."""

from core.cli import main

raise SystemExit(main())
