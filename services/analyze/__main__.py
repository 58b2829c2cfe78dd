"""Entry point: ``python -m services.analyze PATH``."""

from .main import main

raise SystemExit(main())
