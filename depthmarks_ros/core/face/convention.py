"""Landmark conventions of the 68 points (ROS-free): which fitted artefacts a backend reads for each.

* ``'2d'`` (default): the points of 300-W's convention, human clicks on the visible outline (the jaw
  points slide along the silhouette of a turned face); the shipped artefacts are fitted on the fit split
  of AFLW2000-3D and 300-W weighted equally, a compromise of the two sets' conventions.
* ``'3d'``: AFLW2000-3D's convention, projections of the points of a fitted 3D face model (the "3D"
  landmarks of 3DDFA and face_alignment's 3D-FAN): the jaw points stay on the face surface where they
  are hidden. The hybrid's artefacts of its own (mesh -> 68 map, blend and turned-face weights, sigma
  model) are fitted on the AFLW2000-3D fit split alone (`depthmarks fit-face --convention 3d`).

One function picks the files (:func:`artefact_name`), used by the pipeline (node and `depthmarks face`),
`fit-face` and the benchmark alike.
"""
from __future__ import annotations

import os
from typing import Tuple

CONVENTIONS = ('2d', '3d')
DEFAULT_CONVENTION = '2d'
# the face sets each convention's artefacts are fitted on (core/face/datasets.py Sample.dataset)
CONVENTION_SETS = {'2d': ('aflw2000_3d', '300w_lfpw_test'), '3d': ('aflw2000_3d',)}
# the backends with artefacts of their own per convention
CONVENTION_BACKENDS = {'2d': ('dlib', 'mediapipe', 'hybrid'), '3d': ('hybrid',)}
# the files a convention other than '2d' has its own copy of (name_<convention>.ext); every other file
# (the 3D mean face, face_fit.json, whose head-pose factors hold the convention's path under its sigma key,
# 'hybrid_3d', the turned-face predictor, trained on AFLW2000-3D alone already, the visibility model,
# dlib's sigma models) is shared
OWN_FILES = ('face_mesh_to_68.npz', 'face_hybrid.json', 'face_sigma_hybrid.json')
# every backend path's key in the default convention: the sigma models' (face_sigma_<key>.json, the --cache
# records sigma_<key>.npz; FaceLandmarker.sigma_key) and the head-pose factors' (face_fit.json
# head_pose.angle_scales; FaceLandmarker.pose_key); a convention's own key is sigma_key(key, convention)
BACKEND_KEYS = ('hybrid', 'mediapipe', 'mediapipe_fixed', 'dlib', 'dlib_hog', 'dlib_mmod', 'hybrid_box68')


def check_convention(convention: str, backend: str = '') -> None:
    """ValueError with the reason where ``convention`` is unknown or ``backend`` ('' = any) has no
    artefacts for it."""
    if convention not in CONVENTIONS:
        raise ValueError(f'landmark_convention must be one of {CONVENTIONS} (got {convention!r})')
    if backend and backend not in CONVENTION_BACKENDS[convention]:
        raise ValueError(f"landmark_convention '{convention}' is fitted for the "
                         f"{' and '.join(CONVENTION_BACKENDS[convention])} backend only, not {backend!r} "
                         f"(its artefacts are fitted for '2d'; use backend hybrid or landmark_convention '2d')")


def convention_name(name: str, convention: str = DEFAULT_CONVENTION) -> str:
    """``name`` (a '2d' file name) made convention ``convention``'s: itself for '2d', else
    ``<stem>_<convention><ext>`` (the rule of every per-convention file: artefacts, --cache records)."""
    check_convention(convention)
    if convention == DEFAULT_CONVENTION:
        return name
    stem, ext = os.path.splitext(name)
    return f'{stem}_{convention}{ext}'


def artefact_name(name: str, convention: str = DEFAULT_CONVENTION) -> str:
    """The file that convention ``convention`` reads for the artefact ``name`` (a '2d' file name):
    ``name`` itself for '2d' and for files shared by the conventions, else :func:`convention_name`."""
    if name in OWN_FILES:
        return convention_name(name, convention)
    check_convention(convention)
    return name


def sigma_key(key: str, convention: str = DEFAULT_CONVENTION) -> str:
    """The sigma model key (face_sigma_<key>.json, the record cache's sigma_<key>.npz) of backend key
    ``key`` in ``convention``."""
    name = artefact_name(f'face_sigma_{key}.json', convention)
    return name[len('face_sigma_'):-len('.json')]


def split_key(key: str) -> Tuple[str, str]:
    """(backend key, convention) of a sigma model / head-pose key: the inverse of :func:`sigma_key`
    ('hybrid_3d' -> ('hybrid', '3d'); a key of BACKEND_KEYS, 'dlib_hog' or 'hybrid_box68' too, is the
    default convention's, whatever its underscores). The one place a key's convention suffix is read.
    ValueError where ``key`` is no backend key, its suffix no convention, or the convention has no files
    of its own for that backend (it shares the '2d' ones, whose key carries no suffix)."""
    if key in BACKEND_KEYS:
        return key, DEFAULT_CONVENTION
    bases = [b for b in BACKEND_KEYS if key.startswith(b + '_')]
    if not bases:
        raise ValueError(f'{key!r} is no sigma / head-pose key: a backend key ({", ".join(BACKEND_KEYS)}), '
                         'alone or with a landmark convention suffix (_<convention>)')
    base = max(bases, key=len)              # 'hybrid_box68_3d': hybrid_box68's, not hybrid's 'box68_3d'
    convention = key[len(base) + 1:]
    if convention not in CONVENTIONS:
        raise ValueError(f'{key!r}: unknown landmark convention {convention!r} after the backend key {base!r} '
                         f'(conventions: {", ".join(CONVENTIONS)})')
    if convention == DEFAULT_CONVENTION:
        raise ValueError(f'{key!r}: the {convention!r} keys carry no convention suffix (this one is {base!r})')
    if sigma_key(base, convention) != key:
        raise ValueError(f"{key!r}: the key of {base!r} in convention {convention!r} is {sigma_key(base, convention)!r} "
                         f"(convention {convention!r} has files of its own for the "
                         f"{' and '.join(CONVENTION_BACKENDS[convention])} backend only; it shares the other "
                         f"backends' '{DEFAULT_CONVENTION}' files, whose keys carry no suffix)")
    return base, convention
