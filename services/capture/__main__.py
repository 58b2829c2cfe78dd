"""Entry point: ``python -m services.capture``."""

from shared.early_exit import exit_on_stop_signal

exit_on_stop_signal()  # before the imports: a stop while starting is a clean exit

from .main import main  # noqa: E402

raise SystemExit(main())
