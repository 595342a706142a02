"""Mixed precision as one config key, ``amp_dtype``: ``None``, ``"float16"`` or ``"bfloat16"``.

On CUDA, MONAI's engines do the work (``amp=True`` autocasts and scales gradients with
``torch.cuda.amp.GradScaler``); ``amp_kwargs`` passes the dtype. MONAI's trainer only knows
CUDA autocast, so on the CPU the forward pass is autocast to bfloat16 by
:class:`AutocastInferer` and the loss and backward pass stay in float32 (no gradient scaling is
needed with bfloat16's float32 exponent range).
"""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["AMP_DTYPES", "AutocastInferer", "cuda_amp", "cuda_amp_kwargs"]

AMP_DTYPES = {None: None, "none": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(amp_dtype: str | None) -> torch.dtype | None:
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of null, float16, bfloat16; got {amp_dtype!r}")
    return AMP_DTYPES[amp_dtype]


def _device(device: torch.device | str) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def cuda_amp(amp_dtype: str | None, device: torch.device | str) -> bool:
    """Whether MONAI's engines should autocast (CUDA only) for this ``amp_dtype``."""
    return _dtype(amp_dtype) is not None and _device(device).type == "cuda"


def cuda_amp_kwargs(amp_dtype: str | None) -> dict[str, Any]:
    """``amp_kwargs`` for MONAI's engines: the autocast dtype."""
    dtype = _dtype(amp_dtype)
    return {} if dtype is None else {"dtype": dtype}


class AutocastInferer(Inferer):
    """Run the network under ``torch.autocast("cpu", dtype=bfloat16)``; return float32 outputs.

    On CUDA, or with ``amp_dtype=None``, it is a plain forward pass (the engine autocasts).

    Args:
        amp_dtype: ``None``, ``"float16"`` (CUDA only) or ``"bfloat16"``.
        device: the device the network runs on.

    Raises:
        ValueError: ``float16`` on the CPU, where autocast does not support it well; use bfloat16.
    """

    def __init__(self, *, amp_dtype: str | None, device: torch.device | str) -> None:
        super().__init__()
        self.dtype = _dtype(amp_dtype)
        self.device = _device(device)
        if self.dtype is torch.float16 and self.device.type != "cuda":
            raise ValueError("amp_dtype float16 needs CUDA; on the CPU use amp_dtype: bfloat16")
        self.cpu_autocast = self.dtype is not None and self.device.type == "cpu"

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.cpu_autocast:
            return network(inputs, *args, **kwargs)
        with torch.autocast("cpu", dtype=self.dtype):
            out = network(inputs, *args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out
