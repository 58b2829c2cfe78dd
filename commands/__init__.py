"""Commands a user runs by hand, beside the services: ``keys`` (CurveZMQ key pairs, their
migration, the page's credentials) and ``analyze`` (files through the stages, offline)."""
