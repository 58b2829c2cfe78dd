"""Entry point: ``python -m services.display``."""

from .main import main

raise SystemExit(main())
