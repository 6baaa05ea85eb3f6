"""MediaPipe's bundled detectors and landmark models, each run on its own (ROS-free).

The legacy ``mediapipe.solutions`` classes chain detector -> landmarks -> tracking for one person
(Pose) or a fixed number of hands. Here each stage is a one-node MediaPipe graph of a subgraph
that ships compiled into the 0.10.21 wheel, with the .tflite files of
``mediapipe/modules/`` (no download at run time), so this package decides how many people are
detected, which region each landmark pass sees and how regions are tracked:

* :class:`PoseDetector` -- ``PoseDetectionCpu`` (BlazePose detector, 224x224 letterbox of the
  whole image, its own NMS): several people per image, each with 4 alignment keypoints
  (0 hip centre, 1 a point on the circle around the full body, 2 shoulder centre, 3 above the head).
* :class:`PoseLandmarker` -- ``PoseLandmarkByRoiCpu`` (BlazePose full, complexity 1) on one
  rotated region: 33 landmarks, visibility, metric world landmarks and 2 auxiliary landmarks
  (hip centre, body-circle point) from which the next frame's region is made. No output when the
  model's pose presence is below 0.5 (the region holds no person).
* :class:`PalmDetector` -- ``PalmDetectionCpu`` (full or lite): palms with 7 keypoints
  (0 wrist centre, 2 middle-finger base, ...).
* :class:`HandLandmarker` -- ``HandLandmarkCpu`` (full or lite) on one rotated region: 21
  landmarks, metric world landmarks and handedness. No output when hand presence is below 0.5.
* :class:`FaceMeshByRoi` -- the calculators of ``FaceLandmarkCpu`` (face_landmark.tflite, or
  face_landmark_with_attention.tflite: 478 points) on one rotated region, **without** its
  face-presence gate: 468 (478) landmarks with relative depth and the presence score, which the
  caller judges (the legacy FaceMesh drops a face whose score is below its threshold, 0.5).

Coordinates returned are pixels of the full image (MediaPipe's normalised values times width or
height); regions are :class:`depthmarks_ros.core.body.roi.Roi` in pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.body.roi import Roi, alignment_rotation


class GraphError(RuntimeError):
    """A MediaPipe graph cannot be built (mediapipe missing or of another version)."""


def _solution(graph: str, side_inputs: Optional[dict] = None):
    try:
        from depthmarks_ros.core.mediapipe_env import import_mediapipe
        import_mediapipe()   # first: keeps matplotlib's caches out of $HOME
        from mediapipe.python.solution_base import SolutionBase
        return SolutionBase(graph_config=graph, side_inputs=side_inputs or {})
    except (ImportError, AttributeError, ValueError, RuntimeError) as exc:
        raise GraphError(f'MediaPipe subgraph not available ({exc}); it needs mediapipe==0.10.21') from exc


def _rect(roi: Roi, w: int, h: int):
    from mediapipe.framework.formats import rect_pb2
    return rect_pb2.NormalizedRect(x_center=roi.cx / w, y_center=roi.cy / h, width=roi.size / w,
                                   height=roi.size / h, rotation=roi.rotation)


def _landmarks(lm_list, w: int, h: int, x0: int = 0, y0: int = 0) -> np.ndarray:
    return np.array([(p.x * w + x0, p.y * h + y0) for p in lm_list.landmark], np.float64)


def roi_crop(rgb: np.ndarray, roi: Roi, pad: int = 2):
    """(crop, x0, y0, the region in crop pixels): the part of the image under the region's
    axis-aligned box (+ ``pad`` px for the bilinear sampling), so MediaPipe copies and converts that
    part, not the whole frame, per landmark pass. Every pixel the region samples is in the crop or
    outside the image (where the crop's edge is the image's), so the landmarks are the same."""
    h, w = rgb.shape[:2]
    b = roi.box()
    x0, y0 = max(0, int(np.floor(b[0])) - pad), max(0, int(np.floor(b[1])) - pad)
    x1, y1 = min(w, int(np.ceil(b[2])) + pad), min(h, int(np.ceil(b[3])) + pad)
    if x1 - x0 < 2 or y1 - y0 < 2:               # the region lies off the image: whole image
        return np.ascontiguousarray(rgb), 0, 0, roi
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    return crop, x0, y0, Roi(roi.cx - x0, roi.cy - y0, roi.size, roi.rotation)


@dataclass
class Detection:
    score: float
    box: np.ndarray          # x0, y0, x1, y1 px (the detector's box)
    keypoints: np.ndarray    # (K, 2) px


def _detections(dets, w: int, h: int) -> List[Detection]:
    out = []
    for d in dets or []:
        bb = d.location_data.relative_bounding_box
        box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
        kp = np.array([(k.x * w, k.y * h) for k in d.location_data.relative_keypoints], np.float64)
        out.append(Detection(float(d.score[0]) if d.score else 0.0, box, kp))
    return out


def face_roi(box: np.ndarray, keypoints: Optional[np.ndarray] = None, scale: float = 1.5) -> Roi:
    """The face mesh's region from a BlazeFace-style detection, as MediaPipe's
    FaceDetectionFrontDetectionToRoi makes it: centre of the box, side ``scale`` x its larger side,
    rotated so the right eye (keypoint 0) -> left eye (keypoint 1) line is horizontal (no rotation
    without keypoints). ``box``: x0, y0, x1, y1 px; ``keypoints``: (>= 2, 2) px."""
    box = np.asarray(box, np.float64)
    rot = 0.0
    if keypoints is not None and len(keypoints) >= 2 and np.all(np.isfinite(keypoints[:2])):
        right, left = np.asarray(keypoints[0], np.float64), np.asarray(keypoints[1], np.float64)
        if np.hypot(*(left - right)) > 0:
            rot = alignment_rotation(right, left, target_angle=0.0)
    return Roi(float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2),
               float(scale * max(box[2] - box[0], box[3] - box[1])), float(rot))


@dataclass
class FaceMesh:
    points: np.ndarray       # (468 or 478, 3): x, y px of the full image, z relative depth (px, x scale)
    presence: float          # the model's face-presence score (sigmoid), 0..1


class _Graph:
    """One MediaPipe calculator graph (``self._g``, made by :func:`_solution`), closed by :meth:`close`."""
    _g = None

    def close(self) -> None:
        self._g.close()


class _DetectionGraph(_Graph):
    """A detector graph: image in, ``detections`` out (:class:`Detection` in pixels)."""

    def __call__(self, rgb: np.ndarray) -> List[Detection]:
        h, w = rgb.shape[:2]
        return _detections(self._g.process({'image': np.ascontiguousarray(rgb)}).detections, w, h)


class FaceMeshByRoi(_Graph):
    """MediaPipe's face landmark model on a region the caller chose (its own detection), without the
    legacy solution's detector and presence gate: every call returns the mesh and its presence score,
    or None where the region is too small to hold a face (< ``MIN_SIDE_PX``) or lies off the image."""
    MIN_SIDE_PX = 8.0
    GRAPH = '''input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "presence"
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:size" }
node { calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" input_stream: "NORM_RECT:roi"
  output_stream: "TENSORS:input" options { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 192 output_tensor_height: 192 keep_aspect_ratio: false
    output_tensor_float_range { min: 0.0 max: 1.0 } border_mode: BORDER_REPLICATE } } }
node { calculator: "FaceLandmarksModelLoader" input_side_packet: "WITH_ATTENTION:with_attention"
  output_side_packet: "MODEL:model" }
node { calculator: "TfLiteCustomOpResolverCalculator" output_side_packet: "OP_RESOLVER:op_resolver" }
node { calculator: "InferenceCalculator" input_stream: "TENSORS:input" input_side_packet: "MODEL:model"
  input_side_packet: "OP_RESOLVER:op_resolver" output_stream: "TENSORS:output" options { [mediapipe.InferenceCalculatorOptions.ext] { delegate { xnnpack {} } } } }
node { calculator: "SplitTensorVectorCalculator" input_stream: "output" output_stream: "landmark_tensors"
  output_stream: "flag_tensor" options { [mediapipe.SplitVectorCalculatorOptions.ext] {
    ranges: { begin: 0 end: %(n)d } ranges: { begin: %(n)d end: %(n1)d } } } }
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:flag_tensor" output_stream: "FLOAT:presence"
  options { [mediapipe.TensorsToFloatsCalculatorOptions.ext] { activation: SIGMOID } } }
node { calculator: "%(decoder)s" input_stream: "TENSORS:landmark_tensors" output_stream: "LANDMARKS:roi_landmarks" }
node { calculator: "LandmarkProjectionCalculator" input_stream: "NORM_LANDMARKS:roi_landmarks"
  input_stream: "NORM_RECT:roi" input_stream: "IMAGE_DIMENSIONS:size" output_stream: "NORM_LANDMARKS:landmarks" }'''

    def __init__(self, refine: bool = False):
        n = 6 if refine else 1      # face_landmark_with_attention.tflite: 6 landmark tensors, then the flag
        graph = self.GRAPH % dict(n=n, n1=n + 1, decoder='TensorsToFaceLandmarksWithAttention' if refine
                                  else 'TensorsToFaceLandmarks')
        self._g = _solution(graph, {'with_attention': bool(refine)})

    def __call__(self, rgb: np.ndarray, roi: Roi) -> Optional[FaceMesh]:
        if not (np.isfinite([roi.cx, roi.cy, roi.size, roi.rotation]).all() and roi.size >= self.MIN_SIDE_PX):
            return None
        h, w = rgb.shape[:2]
        b = roi.box()
        if b[2] <= 0 or b[3] <= 0 or b[0] >= w or b[1] >= h:    # wholly off the image
            return None
        img, x0, y0, roi = roi_crop(rgb, roi)
        ch, cw = img.shape[:2]
        r = self._g.process({'image': img, 'roi': _rect(roi, cw, ch)})
        if r.landmarks is None or r.presence is None:
            return None
        pts = np.array([(p.x * cw + x0, p.y * ch + y0, p.z * cw) for p in r.landmarks.landmark], np.float64)
        return FaceMesh(pts, float(r.presence))


class PoseDetector(_DetectionGraph):
    GRAPH = '''input_stream: "image"
output_stream: "detections"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:detections" }'''

    def __init__(self):
        self._g = _solution(self.GRAPH)


@dataclass
class PoseLandmarks:
    keypoints: np.ndarray    # (33, 2) px
    visibility: np.ndarray   # (33,)
    world: Optional[np.ndarray]  # (33, 3) m, hip-centred
    aux: np.ndarray          # (2, 2) px: hip centre, body-circle point (next region)


class PoseLandmarker(_Graph):
    GRAPH = '''input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "world_landmarks"
output_stream: "aux"
node { calculator: "PoseLandmarkByRoiCpu" input_stream: "IMAGE:image" input_stream: "ROI:roi"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity" output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:aux" output_stream: "WORLD_LANDMARKS:world_landmarks" }'''

    def __init__(self, model_complexity: int = 1):
        if model_complexity != 1:
            raise GraphError(f'pose model_complexity {model_complexity} is not bundled with the mediapipe wheel '
                             '(only 1 is; 0 and 2 are downloaded at run time, which needs internet)')
        self._g = _solution(self.GRAPH, {'model_complexity': 1})

    def __call__(self, rgb: np.ndarray, roi: Roi) -> Optional[PoseLandmarks]:
        img, x0, y0, roi = roi_crop(rgb, roi)
        h, w = img.shape[:2]
        r = self._g.process({'image': img, 'roi': _rect(roi, w, h)})
        if r.landmarks is None or r.aux is None:
            return None
        vis = np.clip([p.visibility for p in r.landmarks.landmark], 0.0, 1.0)
        world = None
        if r.world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in r.world_landmarks.landmark], np.float64)
        return PoseLandmarks(_landmarks(r.landmarks, w, h, x0, y0), np.asarray(vis, np.float64), world,
                             _landmarks(r.aux, w, h, x0, y0)[:2])


class PalmDetector(_DetectionGraph):
    GRAPH = '''input_stream: "image"
output_stream: "detections"
node { calculator: "PalmDetectionCpu" input_stream: "IMAGE:image"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity" output_stream: "DETECTIONS:detections" }'''

    def __init__(self, model_complexity: int = 1):
        self._g = _solution(self.GRAPH, {'model_complexity': int(model_complexity)})


@dataclass
class HandLandmarks:
    keypoints: np.ndarray    # (21, 2) px
    world: Optional[np.ndarray]  # (21, 3) m, centred near the hand
    model_side: str          # 'left'/'right' as the model says for an unmirrored image
    side_score: float


class HandLandmarker(_Graph):
    GRAPH = '''input_stream: "image"
input_stream: "roi"
output_stream: "landmarks"
output_stream: "world_landmarks"
output_stream: "handedness"
node { calculator: "HandLandmarkCpu" input_stream: "IMAGE:image" input_stream: "ROI:roi"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity" output_stream: "LANDMARKS:landmarks"
  output_stream: "WORLD_LANDMARKS:world_landmarks" output_stream: "HANDEDNESS:handedness" }'''

    def __init__(self, model_complexity: int = 1):
        self._g = _solution(self.GRAPH, {'model_complexity': int(model_complexity)})

    def __call__(self, rgb: np.ndarray, roi: Roi) -> Optional[HandLandmarks]:
        img, x0, y0, roi = roi_crop(rgb, roi)
        h, w = img.shape[:2]
        r = self._g.process({'image': img, 'roi': _rect(roi, w, h)})
        if r.landmarks is None:
            return None
        world = None
        if r.world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in r.world_landmarks.landmark], np.float64)
        side, score = 'unknown', 0.0
        if r.handedness is not None and r.handedness.classification:
            c = r.handedness.classification[0]
            # MediaPipe labels handedness as seen in a mirrored (selfie) image: swap for a robot's camera
            side = {'Left': 'right', 'Right': 'left'}.get(c.label, 'unknown')
            score = float(c.score)
        return HandLandmarks(_landmarks(r.landmarks, w, h, x0, y0), world, side, score)
