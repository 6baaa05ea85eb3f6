"""Disparity files: PFM (float32, exact) and 16-bit PNG (value = disparity * 256, 0 = invalid)."""
from __future__ import annotations

import numpy as np

PNG_SCALE = 256.0


def write_pfm(path: str, image: np.ndarray) -> None:
    """Grey float32 PFM (bottom-to-top rows, little-endian); NaN is kept as written."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError('write_pfm writes single-channel images')
    with open(path, 'wb') as f:
        f.write(f'Pf\n{img.shape[1]} {img.shape[0]}\n-1.0\n'.encode('ascii'))
        f.write(np.flipud(img).astype('<f4').tobytes())


def read_pfm(path: str) -> np.ndarray:
    with open(path, 'rb') as f:
        kind = f.readline().strip()
        if kind not in (b'Pf', b'PF'):
            raise ValueError(f'{path}: not a PFM file')
        w, h = (int(x) for x in f.readline().split())
        scale = float(f.readline())
        dtype = '<f4' if scale < 0 else '>f4'
        ch = 3 if kind == b'PF' else 1
        data = np.frombuffer(f.read(w * h * ch * 4), dtype=dtype)
    img = np.flipud(data.reshape(h, w, ch) if ch == 3 else data.reshape(h, w))
    return img.astype(np.float32)


def write_disparity_png(path: str, disparity: np.ndarray) -> None:
    """16-bit PNG with value = round(disparity * 256); NaN/negative -> 0 (KITTI's convention)."""
    import cv2
    d = np.nan_to_num(np.asarray(disparity, np.float32), nan=0.0)
    v = np.clip(np.round(d * PNG_SCALE), 0, 65535).astype(np.uint16)
    cv2.imwrite(path, v)


def read_disparity_png(path: str) -> np.ndarray:
    import cv2
    v = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if v is None:
        raise ValueError(f'{path}: cannot read')
    d = v.astype(np.float32) / PNG_SCALE
    d[v == 0] = np.nan
    return d
