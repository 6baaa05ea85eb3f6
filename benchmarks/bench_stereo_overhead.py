#!/usr/bin/env python3
"""The stereo node's split in the main job: matcher ms / rest ms / rest share, ours next to an anchor.

Issue 21's target: the stereo node's work outside the matcher (input conversion, calibration,
depth, the output messages and their publishing: everything of a frame on the node's worker but
``backend.compute``) <= 10 % of the node's own per-frame work. The figures are the node's own
(its /diagnostics, written to metrics.json by `depthmarks run`): medians over its last 100 frames
of the frame's time on the worker (``frame_ms``), of the matcher's (``matcher_ms``), their
difference (``rest``), the worker thread's CPU time per frame (``worker_cpu_ms``, without
OpenCV's pool) and, where the node reports it (not the anchor), that thread's CPU outside the
matcher (``rest cpu``: the rest's own work without its waits for a core or the GIL, the figure a
loaded machine changes least).

Runs the README's main job (`depthmarks run --duration D`, single process: sim, stereo, fusion,
face, body, recording on) alternately from this checkout (ours) and from the anchor, a ``git
archive`` of ``--anchor`` (default: the last commit before this benchmark's changes to the node's
output path) unpacked in a temporary folder and run with the same interpreter (its node's rest
computed as ours is, the median of each frame's own; ``--anchor-own-estimator`` leaves its
difference of medians), ``--rounds`` times, and prints each run, the medians per side, the ratio ours / anchor and the machine load
(`uptime`'s averages) before and after each run.

    .venv/bin/python benchmarks/bench_stereo_overhead.py                       # 3 rounds of 20 s
    .venv/bin/python benchmarks/bench_stereo_overhead.py --rounds 5 --anchor none   # ours only
    .venv/bin/python benchmarks/bench_stereo_overhead.py -- -p stereo:backend=opencv
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
ANCHOR = '6f36297'   # main before the stereo output-path work of issue 21 (stereo-overhead)
KEYS = ('frame_ms', 'matcher_ms', 'node_overhead_ms', 'node_overhead_share', 'outputs_ms', 'worker_cpu_ms',
        'node_overhead_cpu_ms')


def load() -> str:
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())


# the node's rest before 61685c4: the difference of the frame's and the matcher's medians (it mixes
# frames; under load the matcher's spread swamps the rest); replaced in the anchor's copy by the
# median of each frame's own rest, as the node computes it now, so both sides are measured alike
OLD_REST = """            values['node_overhead_ms'] = round(float(t[0] - t[1]) * 1e3, 2)
            values['node_overhead_share'] = round(float((t[0] - t[1]) / max(t[0], 1e-9)), 3)"""
SAME_REST = """            _a = np.asarray(self.timings)
            _rest = _a[:, 0] - _a[:, 1]
            values['node_overhead_ms'] = round(float(np.median(_rest)) * 1e3, 2)
            values['node_overhead_share'] = round(float(np.median(_rest / np.maximum(_a[:, 0], 1e-9))), 3)"""


def export(ref: str, folder: str, same_estimator: bool = True) -> str:
    """``ref`` of this repository unpacked into ``folder`` (no .git): the anchor's code; with
    ``same_estimator`` its node reports the rest as ours does (OLD_REST -> SAME_REST)."""
    os.makedirs(folder, exist_ok=True)
    archive = subprocess.run(['git', '-C', ROOT, 'archive', ref], check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', folder], input=archive, check=True)
    node = os.path.join(folder, 'depthmarks_ros', 'nodes', 'stereo_depth.py')
    with open(node) as f:
        text = f.read()
    if same_estimator and OLD_REST in text:
        with open(node, 'w') as f:
            f.write(text.replace(OLD_REST, SAME_REST))
        print(f'anchor {ref}: its node reports the rest as the median of each frame\'s own (as ours)')
    elif same_estimator:
        print(f'anchor {ref}: its node already reports the rest as ours does (or differently: see its code)')
    return folder


def run_once(tree: str, args, out: str) -> dict:
    cmd = [sys.executable, '-m', 'depthmarks_ros.cli.main', 'run', '--duration', f'{args.duration:g}',
           '--output', out, '--quiet'] + args.nodes_args + args.extra
    before = load()
    res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=args.duration + 240)
    if res.returncode != 0:
        print(res.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f'run failed in {tree}: {" ".join(cmd)}')
    with open(os.path.join(out, 'metrics.json')) as f:
        metrics = json.load(f)
    c = metrics['node_counters'].get('stereo_depth', {})
    row = {k: float(c[k]) for k in KEYS if k in c}
    row['rate_hz'] = float(c.get('rate_hz', 'nan'))
    row['load'] = f'{before} -> {load()}'
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--duration', type=float, default=20.0, help='seconds per run (20 = `make run`)')
    ap.add_argument('--anchor', default=ANCHOR, help="git ref of the anchor ('none': ours only)")
    ap.add_argument('--anchor-own-estimator', action='store_true',
                    help="leave the anchor's rest as it computed it (before 61685c4: difference of medians)")
    ap.add_argument('--nodes', default='', help='comma list for `depthmarks run --nodes` (default: the main job)')
    ap.add_argument('extra', nargs='*', help='more `depthmarks run` options after --')
    args = ap.parse_args()
    args.nodes_args = ['--nodes', args.nodes] if args.nodes else []
    sys.path.insert(0, ROOT)
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    env = configure_ros_env()   # a DDS domain of its own, loopback only (the runs inherit it)
    print(f'cores: {os.cpu_count()}  load before: {load()}  ({args.duration:g} s per run, ROS_DOMAIN_ID '
          f'{env["ROS_DOMAIN_ID"]})')
    with tempfile.TemporaryDirectory() as tmp:
        sides = [('ours', ROOT)]
        if args.anchor != 'none':
            sides.append((f'anchor {args.anchor}', export(args.anchor, os.path.join(tmp, 'anchor'),
                                                          not args.anchor_own_estimator)))
        rows = {name: [] for name, _ in sides}
        print(f'{"run":22s} {"matcher ms":>10s} {"rest ms":>8s} {"share":>6s} {"frame ms":>8s} {"outputs ms":>10s} '
              f'{"cpu ms":>7s} {"rest cpu":>8s} {"Hz":>5s}  load before -> after')
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            for name, tree in order:
                row = run_once(tree, args, os.path.join(tmp, f'out_{r}_{len(rows[name])}_{name.split()[0]}'))
                rows[name].append(row)
                print(f'{name[:22]:22s} {row.get("matcher_ms", float("nan")):10.2f} '
                      f'{row.get("node_overhead_ms", float("nan")):8.2f} '
                      f'{row.get("node_overhead_share", float("nan")):6.3f} {row.get("frame_ms", float("nan")):8.2f} '
                      f'{row.get("outputs_ms", float("nan")):10.2f} {row.get("worker_cpu_ms", float("nan")):7.2f} '
                      f'{row.get("node_overhead_cpu_ms", float("nan")):8.2f} {row["rate_hz"]:5.1f}  {row["load"]}', flush=True)
    print(f'load after: {load()}')
    print('\nmedian over the runs: matcher ms / rest ms / rest share (issue 21: <= 0.10) / outputs ms / worker CPU ms'
          ' / rest CPU ms')
    med = {}
    for name, rs in rows.items():
        med[name] = {k: statistics.median(r[k] for r in rs if k in r) for k in KEYS if any(k in r for r in rs)}
        m = med[name]
        print(f'  {name:22s} {m["matcher_ms"]:6.2f} / {m["node_overhead_ms"]:5.2f} / {m["node_overhead_share"]:.3f} / '
              f'{m.get("outputs_ms", float("nan")):5.2f} / {m.get("worker_cpu_ms", float("nan")):5.2f} / '
              f'{m.get("node_overhead_cpu_ms", float("nan")):5.2f}')
    if len(med) == 2:
        a, b = (med[n] for n, _ in sides)
        print(f'  ratio ours / anchor: rest {a["node_overhead_ms"] / b["node_overhead_ms"]:.2f}, matcher '
              f'{a["matcher_ms"] / b["matcher_ms"]:.2f}, outputs {a["outputs_ms"] / b["outputs_ms"]:.2f}, worker CPU '
              f'{a["worker_cpu_ms"] / b["worker_cpu_ms"]:.2f}')


if __name__ == '__main__':
    main()
