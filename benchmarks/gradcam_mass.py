"""Where an ad_cls Grad-CAM++ map puts its mass on an AD phantom: brain, atrophy, cerebellum.

``mrivol.synth.ad_phantoms`` writes no truth maps, so the regions are rebuilt here, in world
(MNI) coordinates, on the map's own grid:

* **brain**: nilearn's MNI152 brain mask (the head model's ``brain_mask``), sampled at each map
  voxel's world position. The phantom's pose (<= 3 mm, 3 degrees) and its 2 mm-std smooth
  deformation are not undone: an approximation of a few mm at the brain's edge;
* **atrophied**: brain voxels within 13.3 mm of the two medial-temporal centres
  (MNI +-26, -22, -14 mm), where ``render_ad_scan`` turns more than a fifth of the grey matter
  into CSF at severity 1 (loss ``0.8 exp(-d^2 / (2 * 8^2))``; exact: that loss is applied in
  the output grid's world coordinates). Cortical thinning and ventricle growth are diffuse and
  left out;
* **cerebellum**: brain voxels with MNI y < -44 mm and z < -22 mm (a box, approximate).

Figures (the JSON object printed last): ``brain_mass_share`` (sum of the map inside the brain
over its total), ``atrophy_to_cerebellum_ratio`` (mean map over the atrophied region over its
mean over the cerebellum) and both means, per map and averaged.

Usage::

    python benchmarks/gradcam_mass.py OUT/<case>_gradcam.nii.gz [...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

HIPPOCAMPI_MM = np.array([[26.0, -22.0, -14.0], [-26.0, -22.0, -14.0]])
ATROPHY_RADIUS_MM = 8.0 * np.sqrt(2.0 * np.log(0.8 / 0.2))  # loss > 0.2 at severity 1: 13.3 mm
CEREBELLUM_MAX_Y_MM, CEREBELLUM_MAX_Z_MM = -44.0, -22.0


def truth_regions(affine: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Boolean ``brain``, ``atrophied`` and ``cerebellum`` masks on the grid ``(affine, shape)``."""
    from mrivol.synth.mni import load_head_model

    tissues = load_head_model(resolution=2).tissues
    vox = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float64) for s in shape), indexing="ij"))
    world = np.tensordot(affine[:3, :3], vox, axes=1) + affine[:3, 3, None, None, None]
    inv = np.linalg.inv(tissues.affine)
    coords = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3, None, None, None]
    brain = ndi.map_coordinates(tissues.brain_mask.astype(np.float32), coords, order=0) > 0.5
    near = np.zeros(shape, bool)
    for centre in HIPPOCAMPI_MM:
        near |= ((world - centre[:, None, None, None]) ** 2).sum(0) < ATROPHY_RADIUS_MM**2
    cerebellum = (world[1] < CEREBELLUM_MAX_Y_MM) & (world[2] < CEREBELLUM_MAX_Z_MM)
    return {"brain": brain, "atrophied": brain & near, "cerebellum": brain & cerebellum}


def gradcam_mass(cam_path: str | Path) -> dict[str, float]:
    """The brain share of a map's mass and its atrophy-to-cerebellum mean ratio.

    Raises:
        ValueError: the map is empty, or a region has no voxel on its grid.
    """
    img = nib.load(cam_path)
    cam = np.clip(img.get_fdata(dtype=np.float32), 0.0, None)
    regions = truth_regions(np.asarray(img.affine), img.shape[:3])
    empty = [k for k, m in regions.items() if not m.any()]
    if cam.sum() <= 0 or empty:
        raise ValueError(f"{cam_path}: empty map or no voxel of {empty} on its grid")
    atrophy, cerebellum = cam[regions["atrophied"]].mean(), cam[regions["cerebellum"]].mean()
    return {
        "brain_mass_share": float(cam[regions["brain"]].sum() / cam.sum()),
        "atrophy_mean": float(atrophy),
        "cerebellum_mean": float(cerebellum),
        "atrophy_to_cerebellum_ratio": float(atrophy / cerebellum) if cerebellum > 0 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("maps", nargs="+", help="<case>_gradcam.nii.gz files of AD phantoms")
    args = parser.parse_args(argv)
    per_map = {Path(m).name: gradcam_mass(m) for m in args.maps}
    for name, figures in per_map.items():
        print(name, " ".join(f"{k}={v}" for k, v in figures.items()))
    keys = next(iter(per_map.values())).keys()
    mean = {  # None: no map mass over the cerebellum (outside the network's field of view)
        k: float(np.mean(v)) if None not in (v := [f[k] for f in per_map.values()]) else None
        for k in keys
    }
    print(json.dumps({"maps": len(per_map), **mean, "per_map": per_map}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
