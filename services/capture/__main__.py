"""Entry point: ``python -m services.capture``."""

from .main import main

raise SystemExit(main())
