"""Navigation between latents (DESIGN.md §3): one interface for every method."""

from latentnav.navigation.path import LatentPath

__all__ = ["LatentPath"]
