"""The iBUG 68-point layout and our MediaPipe Face Mesh -> iBUG-68 index mapping.

iBUG-68 (0-based): 0-16 jaw (image left to right), 17-21 right brow, 22-26 left brow, 27-30 nose
bridge (30 = tip), 31-35 nostrils, 36-41 right eye (36 outer corner), 42-47 left eye (45 outer
corner), 48-59 outer lips (48, 54 corners), 60-67 inner lips. "Right" is the subject's right
(the left of the image for a frontal face).

MediaPipe has no exact counterparts for the jaw contour; the mapping picks the mesh vertex
nearest to each iBUG definition (checked against dlib's predictor on the same faces:
docs/face_landmarks.md gives the per-region distances).
"""
import numpy as np

MEDIAPIPE_TO_IBUG68 = np.array([
    # jaw 0-16
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,
    # right brow 17-21, left brow 22-26
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,
    # nose bridge 27-30, nostrils 31-35
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye 36-41, left eye 42-47
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # inner lips 60-67
    78, 82, 13, 312, 308, 317, 14, 87,
], dtype=np.int64)

RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45

# mirror pairs of the 68 layout (for horizontal flips)
FLIP_68 = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
                   + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
                   + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])



def mirror_68(points, width=None) -> np.ndarray:
    """(..., 68, 2) points of a horizontally mirrored face, as float64: x -> -x (``width`` None) or
    x -> width - 1 - x (pixel indices of an image ``width`` pixels wide flipped left-right), each
    point moved to its mirror partner's slot (FLIP_68: the subject's right eye becomes the left eye).
    Its own inverse. The one 68-point mirror of the face code."""
    p = np.asarray(points, np.float64)
    x = -p[..., 0] if width is None else width - 1 - p[..., 0]
    return np.stack([x, p[..., 1]], axis=-1)[..., FLIP_68, :]


# the face regions the studies report errors by (benchmarks/study_face_*.py)
REGIONS = {'jaw': range(0, 17), 'brows': range(17, 27), 'nose': range(27, 36), 'eyes': range(36, 48),
           'mouth': range(48, 68)}

# groups for drawing outlines
OUTLINES = [list(range(0, 17)), list(range(17, 22)), list(range(22, 27)), list(range(27, 31)),
            list(range(31, 36)), list(range(36, 42)) + [36], list(range(42, 48)) + [42],
            list(range(48, 60)) + [48], list(range(60, 68)) + [60]]
