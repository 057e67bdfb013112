"""Image data for latentnav: ``ImageData`` sets, loaders and the Lightning data module.

``ImageDataModule`` is imported on first access so that plain loading does not import Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latentnav.data.images import ImageData, from_arrays, load_image_folder
from latentnav.data.lines import (
    LinesConfig,
    LinesData,
    angle_bins,
    load_lines,
    make_lines,
    parse_lines_spec,
    render_lines,
)
from latentnav.data.sources import (
    ACCEPTED_SPECS,
    MNIST_CLASSES,
    dataset_splits,
    load_dataset,
    load_embedded_mnist,
    load_mnist,
    read_idx,
)

if TYPE_CHECKING:
    from latentnav.data.datamodule import ImageDataModule

__all__ = [
    "ACCEPTED_SPECS",
    "MNIST_CLASSES",
    "ImageData",
    "ImageDataModule",
    "LinesConfig",
    "LinesData",
    "angle_bins",
    "dataset_splits",
    "from_arrays",
    "load_dataset",
    "load_embedded_mnist",
    "load_image_folder",
    "load_lines",
    "make_lines",
    "parse_lines_spec",
    "render_lines",
    "load_mnist",
    "read_idx",
]


def __getattr__(name: str) -> Any:
    if name == "ImageDataModule":
        from latentnav.data.datamodule import ImageDataModule

        return ImageDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from latentnav.data.toys import *  # noqa
from latentnav.data.toys import __all__ as _toys_all  # noqa: E402

__all__ += _toys_all
