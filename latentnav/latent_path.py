"""Old import path of :class:`latentnav.navigation.path.LatentPath` (kept as a re-export)."""

from latentnav.navigation.path import CHECKPOINT_FORMAT, LatentPath

__all__ = ["LatentPath", "CHECKPOINT_FORMAT"]
