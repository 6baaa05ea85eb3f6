"""Procedural textures and the texture atlas of the simulated scene (ROS-free).

Every material is one square tile of a single atlas image, so a whole camera image is
textured with one bilinear ``cv2.remap`` call. Textures carry detail from ~1 cm to ~50 cm so
that block matching finds structure at every depth of the scene.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

TILE = 512  # texels per tile side


def noise_texture(rng: np.random.Generator, base_rgb: Tuple[int, int, int], contrast: float = 60.0,
                  size: int = TILE) -> np.ndarray:
    """(size, size, 3) uint8: multi-scale smooth noise around a base colour (tileable by wrapping)."""
    import cv2
    acc = np.zeros((size, size), np.float32)
    for sigma, weight in ((1.2, 0.45), (4.0, 0.3), (16.0, 0.25)):
        n = rng.standard_normal((size, size)).astype(np.float32)
        pad = int(4 * sigma) + 1  # wrap-pad so the texture tiles seamlessly
        n = cv2.GaussianBlur(np.pad(n, pad, mode='wrap'), (0, 0), sigma)[pad:-pad, pad:-pad]
        acc += weight * n / (n.std() + 1e-6)
    tint = rng.uniform(0.7, 1.3, 3).astype(np.float32)
    img = np.asarray(base_rgb, np.float32)[None, None, :] + contrast * acc[..., None] * tint[None, None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def checker_noise_texture(rng: np.random.Generator, a_rgb, b_rgb, squares: int = 8,
                          size: int = TILE) -> np.ndarray:
    """A checkerboard of two colours with fine noise on top (floors)."""
    yy, xx = np.mgrid[0:size, 0:size]
    cell = size // squares
    mask = ((yy // cell + xx // cell) % 2).astype(bool)
    img = np.where(mask[..., None], np.asarray(a_rgb, np.float32), np.asarray(b_rgb, np.float32))
    fine = noise_texture(rng, (128, 128, 128), contrast=45.0, size=size).astype(np.float32) - 128.0
    return np.clip(img + fine, 0, 255).astype(np.uint8)


def photo_texture(image_rgb: np.ndarray, size: int = TILE) -> np.ndarray:
    """A photo resized to one tile."""
    import cv2
    return cv2.resize(image_rgb, (size, size), interpolation=cv2.INTER_AREA)


class Atlas:
    """Tiles laid out in a grid; :meth:`sample` reads it bilinearly at atlas pixel coordinates."""

    def __init__(self, tiles: List[np.ndarray]):
        import cv2  # noqa: F401
        n = len(tiles)
        self.cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / self.cols))
        self.image = np.zeros((rows * TILE, self.cols * TILE, 3), np.uint8)
        for i, tile in enumerate(tiles):
            r, c = divmod(i, self.cols)
            self.image[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = tile

    def tile_origin(self, tile_index: int):
        """(x, y) atlas pixel of a tile's top-left corner."""
        r, c = divmod(int(tile_index), self.cols)
        return c * TILE, r * TILE

    @staticmethod
    def texel_coords(s: np.ndarray, t: np.ndarray, wrap: bool):
        """Tile texel coordinates: repeated when ``wrap`` (tiling), else clamped to the tile (photos)."""
        if wrap:
            return np.mod(s, TILE - 1), np.mod(t, TILE - 1)
        return np.clip(s, 0, TILE - 1.001), np.clip(t, 0, TILE - 1.001)

    def sample(self, mapx: np.ndarray, mapy: np.ndarray) -> np.ndarray:
        """Bilinear atlas colours at atlas pixel coordinates (N,) -> (N, 3) float32 RGB."""
        import cv2
        n = mapx.size
        cols = 1024  # remap needs both sides < 32767: lay the samples out as a block
        rows = max(1, -(-n // cols))
        bx = np.zeros(rows * cols, np.float32)
        by = np.zeros(rows * cols, np.float32)
        bx[:n], by[:n] = mapx.ravel(), mapy.ravel()
        out = cv2.remap(self.image, bx.reshape(rows, cols), by.reshape(rows, cols), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        return out.reshape(-1, 3)[:n].astype(np.float32)
