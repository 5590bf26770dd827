"""pypi-delayed-mirror: a quarantined PyPI mirror reconciled from desired state in git."""

__version__ = "0.1.0"
