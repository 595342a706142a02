"""A NibabelReader that several threads can share: it keeps no state between calls.

MONAI's ``NibabelReader.read`` stores the file list of its call on the instance
(``self.filenames``) and ``get_data`` zips the images with that list. ``LoadImaged`` holds one
reader, so when a ``CacheDataset`` fills its cache with several threads, thread A's
``get_data`` can pair its four modalities with thread B's one-file label list and silently
drop three channels (MONAI issue #1025, still in MONAI 1.6.1). This reader does each call's
work on a private shallow copy, so nothing is written to the shared instance.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from monai.data import NibabelReader
from monai.utils import ensure_tuple

__all__ = ["ThreadSafeNibabelReader"]


class ThreadSafeNibabelReader(NibabelReader):
    """``NibabelReader`` whose ``read`` / ``get_data`` never write to the instance.

    Same arguments and outputs as MONAI's reader. Pass it to ``LoadImaged`` (``reader:
    mrivol.transforms.ThreadSafeNibabelReader``) to fill a ``CacheDataset`` with several threads.

    Examples:
        >>> from monai.transforms import LoadImaged
        >>> load = LoadImaged(keys="image", reader=ThreadSafeNibabelReader())
    """

    def read(self, data: Sequence[Any] | Any, **kwargs: Any) -> Any:
        """The nibabel image(s) of ``data``; the file list stays with this call."""
        return NibabelReader.read(copy.copy(self), data, **kwargs)

    def get_data(self, img: Any) -> tuple[Any, dict]:
        """Array and metadata of ``img``, paired with that image's own file names."""
        call = copy.copy(self)
        call.filenames = tuple(i.get_filename() for i in ensure_tuple(img))
        return NibabelReader.get_data(call, img)
