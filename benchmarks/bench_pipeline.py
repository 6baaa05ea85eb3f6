#!/usr/bin/env python3
"""End to end: the README's main job (`make run`), single-process next to multi-process, in one run.

Runs the exact command of the Makefile's `run` target,

    .venv/bin/python -m depthmarks_ros.cli.main run --duration 20 --output OUTPUT

(simulated rig at 10 Hz, 640x480; sim, stereo, fusion, face and body in one process; recording on),
then the same with ``--multi-process`` (the processes the launch file starts: sim_rig, stereo_depth and
depth_fusion share the depth process, every other node has its own; mode ``multi-separate`` adds
``--no-compose``, every node in a process of its own, the launch file's ``compose:=false``; mode
``multi-one`` adds ``--compose all``, every node in one process and the recorder in the runner's, the
launch file's ``compose:=all``: the single process's layout, measured across a process boundary as
``multi`` is; mode ``multi-people`` adds ``--compose people``, face_landmarks and body_pose share a
second process), and prints side by side, per output topic, the steady-state rate, the median / p95 latency
from the sensor stamp to arrival at the recorder, the latency of each third of the run (a growing
queue shows as a rising row; "trend" = last third minus first third), next to issue 21's targets;
then the CPU per node: cores used (1.0 = one core busy) and CPU milliseconds per output frame
(cores / rate: the figure that the machine's load changes least), by thread group (a node's
worker threads with the native pools they started, the executor's main thread, MediaPipe's
threads, the MCAP writer, DDS and other threads; one group per node process with
``--multi-process``); minor page faults per second of each process (one that faults in fresh pages
for every image it receives shows here, see ros/process.py); the nodes' frame counters and the
accuracy against the sim's ground truth.
The machine load (`uptime`'s load averages) is printed before and after each mode.

    .venv/bin/python benchmarks/bench_pipeline.py                 # 20 s per mode, as `make run`
    .venv/bin/python benchmarks/bench_pipeline.py --duration 60   # the 60 s no-growth check
    .venv/bin/python benchmarks/bench_pipeline.py --modes single,multi,multi-separate --repeat 2
        # interleaved (single, multi, multi-separate, single, ...): a summary of the medians over the
        # repeats with each mode's ratio to the first mode
    .venv/bin/python benchmarks/bench_pipeline.py --modes single,multi-one,multi --repeat 3
        # where the measuring subscriber sits: every node in one process with the recorder outside
        # (multi-one) between the single process and the launch layout, interleaved
    .venv/bin/python benchmarks/bench_pipeline.py --modes single,multi,multi-people,multi-one --repeat 2
        # face_landmarks and body_pose in one process, people (multi-people, compose:=people), against the
        # launch layout (multi), one container (multi-one) and the single process, interleaved
    .venv/bin/python benchmarks/bench_pipeline.py --modes single,multi,multi-async --repeat 3
        # the depth process publishing asynchronously (multi-async) against the default, interleaved
    .venv/bin/python benchmarks/bench_pipeline.py --modes multi,multi-async,multi-outbound,multi-crossing,single \
        --repeat 2 --duration 60
        # per-topic asynchronous publishing of the depth process (pipeline/publication.py) against the
        # synchronous default and the whole process asynchronous, interleaved; single as the target's anchor

Input is the simulated rig only (it carries the ground truth); --data is accepted for the common
benchmark interface and not used.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
OUTPUTS = ['stereo/depth', 'stereo/disparity', 'fusion/depth', 'fusion/depth_sigma', 'face/landmarks',
           'face/head_pose', 'body/keypoints', 'stereo/points', 'fusion/points', 'lidar/points', 'camera/image_raw']
# issue 21: every output >= 9.5 Hz at 10 Hz input; fused median <= 100 ms, p95 <= 150; face/body median <= 120
TARGETS = {'fusion/depth': (100, 150), 'face/landmarks': (120, None), 'body/keypoints': (120, None)}
NODE_OUTPUT = {'sim_rig': 'camera/image_raw', 'stereo_depth': 'stereo/depth', 'depth_fusion': 'fusion/depth',
               'face_landmarks': 'face/landmarks', 'body_pose': 'body/keypoints'}
DECIMATED = ('stereo/points', 'fusion/points',   # built at the record rate (points_period), not every frame
             'stereo/disparity')               # recorder only: built for the instants it keeps (ros/local_tap.py)


def load() -> str:
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())


def command(args, folder: str, mode: str):
    """The Makefile's `run` command (with this interpreter), the duration and folder of this run."""
    cmd = [sys.executable, '-m', 'depthmarks_ros.cli.main', 'run', '--duration', f'{args.duration:g}',
           '--output', folder]
    if mode != 'single':
        cmd.append('--multi-process')
    if mode == 'multi-separate':
        cmd.append('--no-compose')
    if mode == 'multi-one':
        cmd += ['--compose', 'all']
    if mode == 'multi-people':
        cmd += ['--compose', 'people']
    return cmd + ['--quiet'] + args.extra


MODES = {'single': 'single-process', 'multi': 'multi-process',
         # every node in a process of its own (launch's compose:=false): stereo -> fusion between processes
         'multi-separate': 'multi, a process per node',
         # every node in one process (launch's compose:=all, one container for the whole pipeline), the
         # recorder in the runner's: the single process's layout measured where multi measures (across a
         # process boundary), the equal-footing comparison for multi
         'multi-one': 'multi, every node in one process',
         # the launch layout's depth process and face_landmarks + body_pose in a second one, people (launch's
         # compose:=people): the rig's camera image and fusion's depth cross into one process fewer
         'multi-people': 'multi, face + body in one process',
         # the recorder's DDS stamp filter (pipeline/recorder_node.py) on: opt-in since 2026-12-07 (Fast DDS
         # crashes a publisher now and then while the filter's parameters change, docs/pipeline.md "Known issues")
         'multi-filtered': 'multi, rec. DDS filter',
         # off, explicitly (the default since 2026-12-07; before, every recorded topic crossed DDS whole)
         'multi-unfiltered': 'multi, no rec. filter',
         # the depth process (only) publishing asynchronously (pipeline/container.py: its default
         # 05:50-06:55 on 2026-12-07; the other processes keep rmw_fastrtps's synchronous default)
         'multi-async': 'multi, async. publishing',
         # the depth process publishing asynchronously only the topics no node of its own reads
         # (pipeline/publication.py OUTBOUND), or also those a node of another process reads (CROSSING:
         # + the rig's camera image and camera_info); the in-process-only hand-overs stay synchronous
         'multi-outbound': 'multi, async. outbound topics',
         'multi-crossing': 'multi, async. crossing topics'}
MODE_ENV = {'multi-filtered': {'DEPTHMARKS_RECORDER_FILTER': '1'},
            'multi-unfiltered': {'DEPTHMARKS_RECORDER_FILTER': '0'},
            'multi-async': {'DEPTHMARKS_CONTAINER_PUBLICATION_MODE': 'ASYNCHRONOUS'},
            'multi-outbound': {'DEPTHMARKS_CONTAINER_PUBLICATION_MODE': 'OUTBOUND'},
            'multi-crossing': {'DEPTHMARKS_CONTAINER_PUBLICATION_MODE': 'CROSSING'}}
SUMMARY = ('stereo/depth', 'fusion/depth', 'face/landmarks', 'body/keypoints', 'camera/image_raw')


def run_mode(mode: str, args, folder: str) -> dict:
    cmd = command(args, folder, mode)
    env = dict(os.environ, **MODE_ENV[mode]) if mode in MODE_ENV else None
    before = load()
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.duration + 240, env=env)
    if res.returncode != 0:
        print(res.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f'run failed ({MODES[mode]}): {" ".join(cmd)}')
    with open(os.path.join(folder, 'metrics.json')) as f:
        metrics = json.load(f)
    metrics['_bench'] = {'command': ' '.join(cmd[1:]), 'load_before': before, 'load_after': load(),
                         'elapsed_s': round(time.monotonic() - t0, 1)}
    # a process that exited with an error: not a figure of the layout (a node that did not start, e.g.
    # an import failure, is skipped in every run alike: the runs stay, the tables say it)
    from depthmarks_ros.pipeline.report import exited_with_error   # ROS-free (sys.path: main())
    failed = exited_with_error(metrics.get('skipped'))
    if failed:
        print(f'!! {MODES[mode]}: {failed}: this run is left out of the summary', file=sys.stderr)
        metrics['_bench']['failed'] = failed
    return metrics


def last_good(runs: list) -> dict:
    """The last run of a mode that did not fail (the last one if all failed)."""
    return next((r for r in reversed(runs) if not r['_bench'].get('failed')), runs[-1])


def fmt(v, spec='.0f'):
    return '-' if v is None else format(v, spec)


def node_of(group: str) -> str:
    """'stereo_depth workers' / 'stereo_depth: workers' -> 'stereo_depth' (else '')."""
    head = group.split(':')[0].split(' ')[0]
    return head if head in NODE_OUTPUT else ''


def per_frame_ms(metrics: dict, group: str, share: float):
    node = node_of(group)
    rate = (metrics['topics'].get(NODE_OUTPUT[node], {}) or {}).get('rate_hz') if node else None
    return share / rate * 1e3 if rate else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default='/work/shared/data', help='unused (the sim rig is the input)')
    ap.add_argument('--duration', type=float, default=20.0,
                    help='seconds per mode (20 = `make run`; 60 for the no-growth check)')
    ap.add_argument('--modes', default='single,multi',
                    help='comma list of ' + ', '.join(MODES) + ' (multi-separate / multi-one / multi-people: --multi-process with '
                    '--no-compose / --compose all / --compose people, a process per node / every node in one process, the recorder outside / face and body in one; multi-filtered / multi-unfiltered: --multi-process with '
                    'DEPTHMARKS_RECORDER_FILTER=1 / 0, the A/B of the recorder\'s DDS stamp filter, opt-in; multi-async: with '
                    'DEPTHMARKS_CONTAINER_PUBLICATION_MODE=ASYNCHRONOUS, the A/B of the depth process\'s asynchronous publishing; '
                    'multi-outbound / multi-crossing: =OUTBOUND / =CROSSING, per topic, pipeline/publication.py)')
    ap.add_argument('--repeat', type=int, default=1,
                    help='run the modes this many times, interleaved (a b a b); the tables show the last run of '
                    'each mode, the summary the median over the runs and the ratio to the first mode')
    ap.add_argument('--json', default='', help='also write every run\'s metrics to this file')
    ap.add_argument('extra', nargs='*', help='more `depthmarks run` options after --, e.g. -- -p face:backend=mediapipe')
    args = ap.parse_args()
    # the runs (and their node processes) in a DDS domain of their own, loopback only: in the
    # machine's default domain, other `depthmarks run`s on the same machine would feed this run's
    # nodes and recorder (seen on the shared machine: camera and LiDAR at 10.7-10.9 Hz, stereo
    # counters of another run's node)
    sys.path.insert(0, ROOT)
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    env = configure_ros_env()
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f'unknown modes {sorted(unknown)}: choose from {list(MODES)}')
    print(f'cores: {os.cpu_count()}  load before: {load()}  ({args.duration:g} s per mode, '
          f'ROS_DOMAIN_ID {env["ROS_DOMAIN_ID"]} of its own)')
    runs = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for m in modes:
                runs[m].append(run_mode(m, args, os.path.join(tmp, f'{m}-{r}')))
                b = runs[m][-1]['_bench']
                print(f'{MODES[m]}: {b["command"]}\n    load {b["load_before"]} -> {b["load_after"]}, '
                      f'{b["elapsed_s"]:.0f} s, executor {runs[m][-1].get("executor") or "-"}', flush=True)
                for proc, topics in (runs[m][-1].get('async_topics') or {}).items():
                    print(f'    {proc} process publishes asynchronously: {" ".join(topics)}', flush=True)
    print(f'load after: {load()}')
    results = {m: last_good(runs[m]) for m in modes}

    print('\nrate Hz / latency median, p95 ms (sensor stamp -> arrival) / median of each third of the run, trend '
          '(last - first third)')
    head = f'{"topic":18s} {"target":>22s}'
    for m in modes:
        head += f' | {MODES[m]:^42s}'
    print(head)
    for topic in OUTPUTS:
        med, p95 = TARGETS.get(topic, (None, None))
        target = '-' if topic in DECIMATED else '>= 9.5 Hz'
        if med:
            target += f', med <= {med}' + (f', p95 <= {p95}' if p95 else '')
        row, present = f'{topic:18s} {target:>22s}', False
        for m in modes:
            t = results[m]['topics'].get(topic)
            present |= t is not None
            t = t or {}
            thirds = '/'.join(fmt(x) for x in (t.get('latency_ms_thirds') or [None] * 3))
            mark = '*' if topic in (results[m].get('filtered_topics') or []) else ' '
            row += (f' |{mark}{fmt(t.get("rate_hz"), "4.1f"):>4s} {fmt(t.get("latency_ms_median")):>4s}'
                    f' {fmt(t.get("latency_ms_p95")):>4s}  {thirds:>14s} {fmt(t.get("latency_ms_trend"), "+.0f"):>5s}')
        if present:
            print(row)
    print('  (stereo/points, fusion/points: built once per record period, 1 Hz by default; stereo/disparity: only the '
          'recorder takes it, so it is built for the instants it keeps, at the record rate, in either layout)')
    if any(results[m].get('filtered_topics') for m in modes):
        print('  (* recorded only, multi-process: the recorder takes it through a stamp filter at the publisher, so only '
              'the messages it writes cross DDS: rate and latency of those; DEPTHMARKS_RECORDER_FILTER=1, opt-in)')

    print('\nCPU by thread group: cores (1.0 = one core busy) and, for a node, CPU ms per output frame')
    labels = []
    for m in modes:
        for k in results[m].get('cpu_threads') or {}:
            if k not in labels:
                labels.append(k)
    for label in labels:
        cells = []
        for m in modes:
            share = (results[m].get('cpu_threads') or {}).get(label)
            ms = per_frame_ms(results[m], label, share) if share is not None else None
            cells.append(f'{m}: {fmt(share, ".3f"):>6s} {("(" + fmt(ms, ".0f") + " ms/frame)") if ms else "":>15s}')
        print(f'  {label:46s} ' + '  '.join(cells))
    for m in modes:
        shares = results[m].get('cpu_share') or {}
        whole = shares.get('whole process')
        if whole is None:
            whole = sum(v for v in shares.values() if v)
        print(f'  {MODES[m]} total: {whole:.2f} cores')
    for m in modes:
        faults = results[m].get('page_faults_per_s') or {}
        if faults:
            print(f'  {MODES[m]} minor page faults/s: ' + ', '.join(f'{k} {v:.0f}' for k, v in faults.items())
                  + f' (all {sum(faults.values()):.0f})')

    print('\nnode counters at the end (frames in / out / dropped as old by the latest-only worker), stereo split')
    nodes = sorted({k for m in modes for k in results[m]['node_counters']})
    for n in nodes:
        cells = []
        for m in modes:
            c = results[m]['node_counters'].get(n, {})
            cell = f'{m}: {c.get("frames_in", "-")}/{c.get("frames_out", "-")}/{c.get("dropped", "-")}'
            if 'matcher_ms' in c:
                cell += (f' matcher {c["matcher_ms"]} ms, rest {c.get("node_overhead_ms")} ms, rest share '
                         f'{c.get("node_overhead_share")} (issue 21: <= 0.10), rest CPU {c.get("node_overhead_cpu_ms", "-")} ms')
            cells.append(cell)
        print(f'  {n:16s} ' + '   '.join(cells))
    for m in modes:
        acc = results[m].get('accuracy_vs_ground_truth', {})
        for topic, a in acc.items():
            print(f'accuracy {m:6s} {topic:14s} MAE {a["mae"]:.0f} mm  coverage {a["coverage"]:.2f}'
                  + (f'  within 1 sigma {a["within_1sigma"]:.2f}' if 'within_1sigma' in a else ''))
        if results[m].get('skipped'):
            print(f'skipped ({m}): {results[m]["skipped"]}')
    summary(runs, modes)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(runs, f, indent=2)


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])


def summary(runs: dict, modes: list) -> None:
    """Median over the interleaved runs of each mode: latency median / p95 per key topic and the
    stereo node's rest share, with each mode's ratio to the first mode (the reference)."""
    failed = {m: sum(bool(r['_bench'].get('failed')) for r in runs[m]) for m in modes}
    runs = {m: [r for r in runs[m] if not r['_bench'].get('failed')] for m in modes}
    ref = modes[0]
    counts = ', '.join(f'{MODES[m]} {len(runs[m])}' for m in modes)
    print(f'\nsummary: median over the interleaved runs that did not fail ({counts}); (x ratio) = mode / {MODES[ref]}')
    for m in modes:
        if failed[m]:
            print(f'  ({MODES[m]}: {failed[m]} run(s) with a process that exited with an error left out)')
    print(f'{"latency median / p95 ms":32s}' + ''.join(f' | {MODES[m]:^34s}' for m in modes))

    def cell(m, value, ref_value, spec='.0f'):
        ratio = f'x{value / ref_value:.2f}' if value is not None and ref_value and m != ref else ''
        return f'{fmt(value, spec)} {ratio}'

    for topic in SUMMARY:
        figures = {m: [median((r['topics'].get(topic) or {}).get(k) for r in runs[m])
                       for k in ('latency_ms_median', 'latency_ms_p95')] for m in modes}
        if all(f == [None, None] for f in figures.values()):
            continue
        row = f'{topic:32s}'
        for m in modes:
            med, p95 = figures[m]
            row += f' | {cell(m, med, figures[ref][0]):>16s} {cell(m, p95, figures[ref][1]):>17s}'
        print(row)
    # the stereo node's work outside the matcher: its share of the frame (issue 21: <= 0.10) and the
    # worker thread's CPU ms outside the matcher (the figure the load changes least)
    for key, label, spec in (('node_overhead_share', 'stereo rest share (<= 0.10)', '.3f'),
                             ('node_overhead_cpu_ms', 'stereo rest CPU ms', '.2f')):
        values = {m: median(_float(r['node_counters'].get('stereo_depth', {}).get(key)) for r in runs[m]) for m in modes}
        if any(v is not None for v in values.values()):
            print(f'{label:32s}' + ''.join(f' | {cell(m, values[m], values[ref], spec):>34s}' for m in modes))


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


if __name__ == '__main__':
    main()
