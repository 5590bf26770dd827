"""Vulnerability services: where advisories come from."""

from reconciler.vulns.interface import (
    PackageVersion,
    ServiceAnswer,
    ServiceError,
    VulnerabilityService,
)
from reconciler.vulns.osv import OsvService

__all__ = [
    "OsvService",
    "PackageVersion",
    "ServiceAnswer",
    "ServiceError",
    "VulnerabilityService",
]
