"""Registries: where the mirror's packages live."""

from reconciler.registry.directory import DirectoryRegistry
from reconciler.registry.interface import LockInfo, LockLostError, Registry, RegistryError

__all__ = ["DirectoryRegistry", "LockInfo", "LockLostError", "Registry", "RegistryError"]
