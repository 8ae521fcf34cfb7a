"""`python -m cli ...` (also under `torchrun`)."""

from cli.main import main

raise SystemExit(main())
