"""`python -m simulators` is `spc simulate`."""

from simulators.cli import main

raise SystemExit(main())
