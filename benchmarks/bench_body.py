#!/usr/bin/env python3
"""Body pose, one run, ours next to the reference measured in the same run (and the load):

* people (--only people): COCO val2017 samples, CrowdPose, AIC, MHP, PoseTrack18 frames; ours on
  whole images with no boxes (the batch command's settings) vs the single-person MediaPipe Pose on
  each ground-truth box enlarged 25%. OKS-AP / AP50 (core/body/metrics.py: oks_ap, COCO's
  protocol), PCK@0.2 (0.2 x max(box side)) of the best-matching person, people found at OKS >= 0.5;
  joints: the COCO-17 joints each set labels (by name). Per split (all, fit, report; rule below).
* hands: FreiHAND, OneHand10K, InterHand2.6M (3D joints projected with its cameras); PCK@0.2 of the
  hand box, the best hand found per labelled hand, and hands found vs labelled (a hand found beyond
  the labelled count is a false hand); reference mp.solutions.hands (static).
* speed: ms per 640x480 frame (wall and CPU), node defaults, tracking (video-like) and still frames, 1
  person (sim rig), 3 people (astronauts), 3 people each with a hand (OneHand10K), hands off/on;
  reference the raw mp.solutions.pose call, interleaved.
* sim: 3D error of keypoints lifted with stereo depth on the sim rig's person billboard vs the
  model's world landmarks placed at the torso (what hri_body_detect-style wrappers publish).
* node: body_pose over DDS, clouds/s and latency.
Split rule: int(sha1(stem).hexdigest(), 16) % 5 == 0 -> report split, else fit split.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.cli.body import batch_settings  # noqa: E402
from depthmarks_ros.core.body.metrics import oks_ap, pck  # noqa: E402
from depthmarks_ros.core.body.pipeline import BodyPoseEstimator, coco17_in_box  # noqa: E402
from depthmarks_ros.core.split import SPLIT_RULE, part_of  # noqa: E402


def _split(name):
    return part_of(os.path.splitext(os.path.basename(name))[0])


def _rgb(path):
    bgr = cv2.imread(path)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _score_people(per_image):
    """per_image: [(name, [(kp17, score)], gts)] -> one line per split (all, fit, report)."""
    lines = []
    for split in ('all', 'fit', 'report'):
        sel = [(d, g) for n, d, g in per_image if split == 'all' or _split(n) == split]
        if not sel or not any(not x['ignore'] for _, g in sel for x in g):
            lines.append(f'{split}: no labelled person')
            continue
        r = oks_ap(sel)
        pcks = []
        for dets, gts in sel:
            for g in gts:
                if g['ignore']:
                    continue
                best = 0.0
                for kp, _ in dets:
                    best = max(best, pck(kp, g['keypoints'], g['labelled'], max(g['bbox'][2], g['bbox'][3])))
                pcks.append(best)
        lines.append(f"{split} ({len(sel)} images, {r['people']} people): OKS-AP {r['AP']:.3f}, AP50 {r['AP50']:.3f}, "
                     f"PCK@0.2 {np.mean(pcks):.3f}, found (OKS >= 0.5) {r['found']}/{r['people']}, "
                     f"{sum(len(d) for d, _ in sel)} people output")
    return lines


def people_sets(data_dir, reference):
    """Whole images, no boxes given (ours) next to the single-person model on ground-truth crops."""
    from depthmarks_ros.core.body.backends import create_backend
    from depthmarks_ros.core.body.coco_io import load_keypoint_set
    mp_dir = os.path.join(data_dir, 'body', 'multi_person')
    sets = [('COCO val2017 samples', os.path.join(data_dir, 'body', 'coco_val2017'), 'test_coco.json'),
            ('CrowdPose', os.path.join(mp_dir, 'crowdpose'), 'test_crowdpose.json'),
            ('AIC', os.path.join(mp_dir, 'aic'), 'test_aic.json'),
            ('MHP', os.path.join(mp_dir, 'mhp'), 'test_mhp.json'),
            ('PoseTrack18 frames', os.path.join(mp_dir, 'posetrack18'), 'annotations/test_posetrack18_val.json')]
    est = BodyPoseEstimator(**batch_settings())
    single = create_backend('mediapipe', static=True) if reference else None
    for title, folder, ann in sets:
        path = os.path.join(folder, ann)
        if not os.path.isfile(path):
            print(f'({title}: not found, skipped)')
            continue
        gts_by_file, _ = load_keypoint_set(path)
        ours, ref = [], []
        t_ours = 0.0
        for name, gts in gts_by_file.items():
            rgb = _rgb(os.path.join(folder, name))
            if rgb is None:
                continue
            t0 = time.perf_counter()
            people = est.process(rgb)
            t_ours += time.perf_counter() - t0
            ours.append((name, [(p.coco17()[0], p.score) for p in people], gts))
            if single is not None:
                dets = []
                for g in gts:
                    if g['ignore']:
                        continue
                    found = coco17_in_box(single, rgb, g['bbox'])
                    if found is not None:
                        dets.append((found[0], found[2]))
                ref.append((name, dets, gts))
        print(f'{title} (joints scored: those of the 17 COCO joints the set labels, COCO sigmas, '
              f'area = segment area or box area; {SPLIT_RULE}); ours {t_ours / max(1, len(ours)) * 1e3:.0f} ms/image:')
        for line in _score_people(ours):
            print(f'  ours, whole images, no boxes: {line}')
        if single is not None:
            for line in _score_people(ref):
                print(f'  reference, MediaPipe Pose on ground-truth crops (+25%): {line}')
    est.close()
    if single is not None:
        single.close()


IH_TO_MP = [20] + [f * 4 + (3 - k) for f in range(5) for k in range(4)]   # InterHand2.6M -> MediaPipe order


def _hand_sets(data_dir):
    """[(set, file, [(keypoints (21, 2), labelled (21,), ref size px)])] of the hand samples."""
    out = []
    for name in ('freihand', 'onehand10k'):
        folder = os.path.join(data_dir, 'hands', name)
        path = os.path.join(folder, f'test_{name}.json')
        if not os.path.isfile(path):
            continue
        d = json.load(open(path))
        files = {im['id']: im['file_name'] for im in d['images']}
        per = {}
        for a in d['annotations']:
            kp = np.asarray(a['keypoints'], float).reshape(21, 3)
            per.setdefault(files[a['image_id']], []).append((kp[:, :2], kp[:, 2] > 0, max(a['bbox'][2:])))
        out += [(name, os.path.join(folder, f), h) for f, h in per.items()]
    folder = os.path.join(data_dir, 'hands', 'interhand2.6m')
    if os.path.isfile(os.path.join(folder, 'test_interhand2.6m_data.json')):
        d = json.load(open(os.path.join(folder, 'test_interhand2.6m_data.json')))
        cams = json.load(open(os.path.join(folder, 'test_interhand2.6m_camera.json')))
        joints = json.load(open(os.path.join(folder, 'test_interhand2.6m_joint_3d.json')))
        for im, a in zip(d['images'], d['annotations']):
            cam = cams[str(im['capture'])]
            c = str(im['camera'])
            R, pos = np.asarray(cam['camrot'][c], float), np.asarray(cam['campos'][c], float)
            f, pp = np.asarray(cam['focal'][c], float), np.asarray(cam['princpt'][c], float)
            world = np.asarray(joints[str(im['capture'])][str(im['frame_idx'])]['world_coord'], float)
            xc = (world - pos) @ R.T
            uv = xc[:, :2] / xc[:, 2:3] * f + pp
            valid = np.asarray(a['joint_valid'], float).ravel() > 0
            hands = []
            for h0 in (0, 21):                  # right hand joints 0..20, left 21..41
                idx = [h0 + i for i in IH_TO_MP]
                lab = valid[idx]
                if lab.sum() >= 10:
                    kp = uv[idx]
                    hands.append((kp, lab, float(np.ptp(kp[lab], axis=0).max())))
            out.append(('interhand2.6m', os.path.join(folder, im['file_name']), hands))
    return out


def hand_samples(data_dir):
    """Hand PCK@0.2 of the hand box: per labelled hand, the best-matching hand found in the image."""
    import mediapipe as mp
    samples = _hand_sets(data_dir)
    if not samples:
        print('(hand samples not found: skipped)')
        return
    est = BodyPoseEstimator(**batch_settings())
    refs = {f'ref{c}': mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, model_complexity=c)
            for c in (1, 0)}
    rows = {'ours': [], 'ref1': [], 'ref0': []}
    counts = {}                      # key -> [(image, hands found, hands labelled)]
    t_ours = 0.0
    for set_name, path, gts in samples:
        rgb = _rgb(path)
        if rgb is None:
            continue
        t0 = time.perf_counter()
        people = est.process(rgb)
        t_ours += time.perf_counter() - t0
        ours = [h.keypoints for p in people for h in p.hands.values()] + [h.keypoints for h in est.loose_hands]
        h, w = rgb.shape[:2]
        found_by = {'ours': ours}
        for key, ref in refs.items():
            r = ref.process(rgb)
            found_by[key] = [np.array([(q.x * w, q.y * h) for q in lm.landmark]) for lm in (r.multi_hand_landmarks or [])]
        for key, found in found_by.items():
            counts.setdefault(key, []).append((path, len(found), len(gts)))
            for kp, lab, size in gts:
                best = max([pck(f, kp, lab, size) for f in found], default=0.0)
                rows[key].append((set_name, path, best, len(found) > 0))
    for key, title in (('ours', 'ours (batch settings: hands at wrists, palm detector, turned-region consensus, partner search)'),
                       ('ref1', 'reference mp.solutions.hands (static, 2 hands, full model)'),
                       ('ref0', 'reference mp.solutions.hands (static, 2 hands, lite model)')):
        for split in ('all', 'fit', 'report'):
            sel = [r for r in rows[key] if split == 'all' or _split(r[1]) == split]
            if not sel:
                continue
            per_set = {s: np.mean([r[2] for r in sel if r[0] == s]) for s in dict.fromkeys(r[0] for r in sel)}
            images = {r[1]: r[3] for r in sel}
            hit = [r[2] for r in sel if r[3]]
            cnt = [c for c in counts[key] if split == 'all' or _split(c[0]) == split]
            extra = sum(max(0, f - n) for _, f, n in cnt)
            print(f'hands, {title}, {split}: hands found {sum(f for _, f, _ in cnt)} for {sum(n for _, _, n in cnt)} '
                  f'labelled ({extra} more than labelled in an image); '
                  f'PCK@0.2 {np.mean([r[2] for r in sel]):.3f} over {len(sel)} hands '
                  f'(a hand not found counts 0; {np.mean(hit) if hit else float("nan"):.3f} over the {len(hit)} hands '
                  f'of images where one was found) '
                  f'({", ".join(f"{k} {v:.3f}" for k, v in per_set.items())}); images with >= 1 hand '
                  f'{sum(images.values())}/{len(images)}')
    print(f'  ({SPLIT_RULE}; ours {t_ours / len(samples) * 1e3:.0f} ms wall per image, batch settings with the face)')
    est.close()
    for ref in refs.values():
        ref.close()


def _timed(fn, n):
    """(median wall ms, mean CPU ms of this process, all threads) of n calls."""
    ts, c0 = [], time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts) * 1e3), (time.process_time() - c0) / n * 1e3


def _scenes(data_dir):
    """640x480 frames: 1 person (sim rig), 3 people (skimage's astronaut x 3: no hand visible) and, with
    the data, 3 people each showing a hand (OneHand10K 33.jpg x 3, fit split)."""
    from skimage import data
    from depthmarks_ros.core.sim import SimConfig, SimRig
    one = SimRig(SimConfig()).render(0.0).left_rgb
    scenes = [('1 person (sim rig)', one, 0)]
    astro = cv2.resize(data.astronaut(), (213, 213))
    three = np.full((480, 640, 3), 200, np.uint8)
    for i in range(3):
        three[140:353, i * 213:(i + 1) * 213] = astro
    scenes.append(('3 people (astronauts, no hand visible)', three, 2))
    path = os.path.join(data_dir, 'hands', 'onehand10k', '33.jpg')
    if os.path.isfile(path):
        woman = cv2.resize(_rgb(path), (213, 326))
        hands3 = np.full((480, 640, 3), 255, np.uint8)
        for i in range(3):
            hands3[77:403, i * 213:(i + 1) * 213] = woman
        scenes.append(('3 people with a hand each (OneHand10K 33.jpg x 3)', hands3, 2))
    return scenes


def speed(n, data_dir):
    """ms per 640x480 frame with the node's defaults (params/body_pose.py; detector tiles 2 where the
    people are 213 px wide: the whole-image detector alone misses some), in tracking mode (video-like:
    the same frame again, people tracked, detector every redetect_every frames) and as still frames
    (each frame on its own: detector on every frame); wall ms (median) and CPU ms (this process, all
    threads: what a quiet machine would take per frame, about). Reference, interleaved (half before,
    half after each of ours): the raw mp.solutions.pose call (legacy single-person, tracking, 2D
    only) on the 1-person frame."""
    import mediapipe as mp
    from depthmarks_ros.params.body_pose import BodyPoseParams, estimator_settings
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    scenes = _scenes(data_dir)
    one = scenes[0][1]
    raw = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1)
    raw.process(one)
    node = estimator_settings(BodyPoseParams())
    print(f'speed: node defaults {node}; n = {n} frames each')
    runs = [(scene, mode, hands, node['workers']) for scene in scenes for mode in ('tracking', 'still frames')
            for hands in (False, True)]
    runs += [(scene, 'tracking', True, 1) for scene in scenes]        # the same, landmark passes on one thread
    for (title, img, tiles), mode, hands, workers in runs:
        est = BodyPoseEstimator(**dict(node, hands=hands, detect_tiles=tiles, static=mode != 'tracking',
                                       workers=workers))
        for _ in range(12):                  # the tiles are scanned in turn: everybody is found
            people = est.process(img, K)
        r1 = _timed(lambda: raw.process(one), max(1, n // 2))
        ours = _timed(lambda: est.process(img, K), n)
        r2 = _timed(lambda: raw.process(one), max(1, n // 2))
        ref = ((r1[0] + r2[0]) / 2, (r1[1] + r2[1]) / 2)
        people = est.process(img, K)
        print(f'speed, {title}, {mode}, hands {"on" if hands else "off"}, workers {workers}: found {len(people)} people, '
              f'{sum(len(p.hands) for p in people)} hands; ours {ours[0]:.1f} ms wall ({1e3 / ours[0]:.1f} fps), '
              f'{ours[1]:.1f} ms CPU ({1e3 / max(ours[1], 1e-3):.1f} fps CPU-bound) | reference raw '
              f'mp.solutions.pose, 1 person: {ref[0]:.1f} ms wall, {ref[1]:.1f} ms CPU | ratio ours/ref '
              f'wall {ours[0] / ref[0]:.2f}, CPU {ours[1] / max(ref[1], 1e-3):.2f}; load {os.getloadavg()[0]:.1f}')
        est.close()
    raw.close()


def sim_3d():
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)]
    st = StereoMatcher(StereoParams()).compute(*grey)
    depth = sim.stereo.disparity_to_depth(st.disparity)
    est = BodyPoseEstimator(static=True)
    people = est.process(f.left_rgb, sim.stereo.left.intrinsics(), depth)
    if not people:
        print('sim rig: no person found')
        return
    p = people[0]
    from depthmarks_ros.core.body.lifting3d import lift_keypoints
    K = sim.stereo.left.intrinsics()
    model_xyz = lift_keypoints(p.keypoints, p.visibility, K, None, p.world)[0]
    ours, ref = [], []
    for (u, v), z, zm, src, vis in zip(p.keypoints, p.xyz[:, 2], model_xyz[:, 2], p.source, p.visibility):
        iu, iv = int(round(u)), int(round(v))
        if src == 1 and vis > 0.5 and 0 <= iu < 640 and 0 <= iv < 480 and f.person_mask[iv, iu]:
            ours.append(abs(z - f.depth_gt[iv, iu]))
            ref.append(abs(zm - f.depth_gt[iv, iu]))
    for name, e in (('ours: lifted with stereo depth', np.array(ours)),
                    ('reference: model world landmarks, no depth', np.array(ref))):
        print(f'sim rig person at {np.median(f.depth_gt[f.person_mask]):.2f} m, {len(e)} visible keypoints, '
              f'{name}: depth error mean {e.mean() * 1000:.1f} mm, median {np.median(e) * 1000:.1f} mm, '
              f'max {e.max() * 1000:.1f} mm (target < 50 mm)')
    est.close()


def node_throughput(seconds=4.0, rate=40.0):
    """body_pose in-process over real DDS (own executor thread, as run_node), depth from the sim's
    ground truth; 640x480 image + camera_info + depth published at ``rate`` Hz, outputs counted."""
    import threading
    from depthmarks_ros.testing.ros_harness import RosProbe, configure_ros_env
    configure_ros_env()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from depthmarks_ros.convert.camera_info import info_from_camera
    from depthmarks_ros.convert.image import numpy_to_image
    from depthmarks_ros.convert.stamps import stamp_ns
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.nodes.body_pose import BodyPoseNode
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    rclpy.init()
    probe = RosProbe('bench_body')
    node = BodyPoseNode(parameter_overrides=[Parameter('depth_topic', value='depth')])
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(Image, 'depth')]
    out = probe.subscribe(PointCloud2, 'body/keypoints', node.output_qos())
    for p in pubs:
        probe.wait_for_subscribers(p)
    info = info_from_camera(sim.stereo.left)

    def send():
        stamp = probe.node.get_clock().now().to_msg()
        msgs = [numpy_to_image(f.left_rgb, 'rgb8'), info, numpy_to_image(f.depth_gt, '32FC1')]
        for m, p in zip(msgs, pubs):
            m.header.stamp = stamp
            p.publish(m)

    for _ in range(5):  # warm-up
        send()
        probe.spin_for(0.1)
    n0, lat, t0 = len(out), [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        send()
        n_before = len(out)
        probe.spin_for(1.0 / rate)
        if len(out) > n_before:
            lat.append((probe.node.get_clock().now().nanoseconds - stamp_ns(out[-1].header)) * 1e-6)
    fps = (len(out) - n0) / (time.perf_counter() - t0)
    print(f'body_pose node over DDS, inputs at {rate:.0f} Hz: {fps:.1f} keypoint clouds/s (target >= 30), '
          f'latency stamp -> received median {np.median(lat):.1f} ms')
    ex.shutdown()
    node.shutdown()
    node.destroy_node()
    probe.close()
    rclpy.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default='/work/shared/data')
    ap.add_argument('--repeat', type=int, default=30)
    ap.add_argument('--only', default='', help='comma list of parts: people,hands,speed,sim,node')
    args = ap.parse_args()
    parts = set(args.only.split(',')) if args.only else {'people', 'hands', 'speed', 'sim', 'node'}
    print(f'load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')
    if 'people' in parts:
        people_sets(args.data, reference=True)
    if 'hands' in parts:
        hand_samples(args.data)
    if 'speed' in parts:
        speed(args.repeat, args.data)
    if 'sim' in parts:
        sim_3d()
    if 'node' in parts:
        node_throughput()
    print(f'load average (1 min) at the end: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
