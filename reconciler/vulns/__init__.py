"""Vulnerability services: where advisories come from."""

from reconciler.vulns.interface import (
    PackageVersion,
    ServiceAnswer,
    ServiceError,
    VulnerabilityService,
)
from reconciler.vulns.osv import OsvService
from reconciler.vulns.pypi import PypiService
from reconciler.vulns.safety_db import SafetyService

__all__ = [
    "OsvService",
    "PackageVersion",
    "PypiService",
    "SafetyService",
    "ServiceAnswer",
    "ServiceError",
    "VulnerabilityService",
]
