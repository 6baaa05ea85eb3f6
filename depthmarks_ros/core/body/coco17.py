"""BlazePose 33 -> COCO-17 and the skeletons of both layouts.

COCO-17 order: nose, left_eye, right_eye, left_ear, right_ear, left_shoulder, right_shoulder,
left_elbow, right_elbow, left_wrist, right_wrist, left_hip, right_hip, left_knee, right_knee,
left_ankle, right_ankle. BlazePose indices of the same joints: 0, 2, 5, 7, 8, 11, 12, 13, 14, 15,
16, 23, 24, 25, 26, 27, 28 (BlazePose's eye centres 2/5 stand for COCO's eyes).
"""
import numpy as np

BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
COCO17_NAMES = ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
                'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
                'right_knee', 'left_ankle', 'right_ankle']
COCO17_BONES = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
BLAZEPOSE_BONES = [(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25),
                   (25, 27), (24, 26), (26, 28), (27, 29), (29, 31), (27, 31), (28, 30), (30, 32), (28, 32),
                   (15, 17), (15, 19), (15, 21), (16, 18), (16, 20), (16, 22), (0, 1), (1, 2), (2, 3), (3, 7),
                   (0, 4), (4, 5), (5, 6), (6, 8), (9, 10)]
TORSO = [11, 12, 23, 24]  # BlazePose shoulders and hips
# COCO OKS per-keypoint constants (sigmas), from the COCO keypoint evaluation
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
# 21 hand keypoints (MediaPipe / COCO-WholeBody order): 0 wrist, then thumb 1-4, index 5-8, middle 9-12,
# ring 13-16, little 17-20, each from the base to the tip
HAND_BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]
