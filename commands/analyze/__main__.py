"""Entry point: ``python -m commands.analyze PATH``."""

from .main import main

raise SystemExit(main())
