"""`depthmarks run`: the full pipeline in one process for a fixed time, recorded and reported.

Writes OUTPUT/recording.mcap (every output topic; Foxglove, `ros2 bag play`), OUTPUT/previews/*.png,
OUTPUT/metrics.json (rates, latencies, accuracy against the simulated rig's ground truth) and the
parameter files used (OUTPUT/params/). Input: the simulated rig (default), a video file (--video),
a camera device (--camera) or a recording (--bag, MCAP).
"""
from __future__ import annotations

import json

from depthmarks_ros.pipeline.graph import COMPOSE_CHOICES
from depthmarks_ros.pipeline.publication import LOOPBACK_PROFILE


def add_arguments(p) -> None:
    p.add_argument('--duration', type=float, default=20.0, help='seconds to run')
    p.add_argument('--output', '-o', default='output/run')
    p.add_argument('--nodes', default='sim,stereo,fusion,face,body',
                   help='comma list of: stereo, fusion, mono, face, body (the source is chosen separately)')
    p.add_argument('--video', default='', help='play a video file as camera/image_raw instead of the simulator')
    p.add_argument('--camera', default='', help='capture from a camera device (index or /dev/videoN)')
    p.add_argument('--bag', default='', help='play an MCAP recording of sensor topics instead of the simulator')
    p.add_argument('--rate', type=float, default=None,
                   help='simulated sensor rate (Hz; default: config/sim_rig_node.yaml, 10 Hz)')
    p.add_argument('--mono-model', default='', help='local depth model folder: enables mono_depth')
    p.add_argument('--no-record', action='store_true')
    p.add_argument('--record-rate', type=float, default=1.0,
                   help='messages per second and topic written to the MCAP file (0 = every message)')
    p.add_argument('--no-dds-profile', action='store_true', help=f'do not load config/{LOOPBACK_PROFILE}')
    p.add_argument('--quiet', action='store_true', help='no progress line')
    p.add_argument('--multi-process', action='store_true',
                   help='run the nodes in processes as ros2 launch does (the simulated rig, stereo and fusion '
                        'share the "depth" process, every other node has its own); this process records and measures')
    layout = p.add_mutually_exclusive_group()
    layout.add_argument('--compose', default='true', choices=COMPOSE_CHOICES,
                        help='with --multi-process (ignored without it), the launch files\' compose:= : true (default) '
                             'the simulated rig, stereo and fusion share the "depth" process; false every node in a '
                             'process of its own; all every node in one process ("pipeline", one container for the whole '
                             'pipeline; the recorder stays in this one); people as true, and face and body share a second '
                             'process, "people"')
    layout.add_argument('--no-compose', action='store_true',
                        help='the same as --compose false (with --multi-process; ignored without it)')
    p.add_argument('--start', default='',
                   help='the launch files\' nodes:= : start only these nodes of the graph (comma list of sim, video, '
                        'stereo, fusion, mono, face, body, tf), wired as in the whole graph (split across hosts)')
    p.add_argument('--namespace', default='', help='namespace of every node and topic (one per rig)')
    p.add_argument('--frame-prefix', default='', help='prefix of every frame of the rig, e.g. rig1/')
    p.add_argument('--use-sim-time', action='store_true', help='every node follows /clock')
    p.add_argument('--param', '-p', action='append', default=[], metavar='NODE:NAME=VALUE',
                   help='set a node parameter over its config file (repeatable; VALUE is YAML), e.g. '
                        'sim:motion=true, stereo:disparity_range=64, face:backend=mediapipe')


def parse_param_overrides(items) -> dict:
    """['sim:motion=true', ...] -> {'sim_rig': {'motion': True}, ...}; ValueError names a bad item."""
    import yaml
    from depthmarks_ros.pipeline.graph import resolve
    out: dict = {}
    for item in items:
        node, sep, rest = item.partition(':')
        name, eq, value = rest.partition('=')
        if not sep or not eq or not node or not name:
            raise ValueError(f'--param {item!r}: expected NODE:NAME=VALUE, e.g. sim:motion=true')
        try:
            parsed = yaml.safe_load(value) if value else ''
        except yaml.YAMLError as exc:
            raise ValueError(f'--param {item!r}: VALUE is not YAML ({exc})') from exc
        out.setdefault(resolve([node.strip()])[0], {})[name.strip()] = parsed
    return out


def unknown_params(overrides: dict) -> list:
    """The ``--param`` names no node declares: ['stereo_depth: bakend (did you mean backend?)', ...]. A
    node ignores a name it does not declare; in one process the runner asks each started node
    (``has_parameter``), with --multi-process the nodes are in other processes, so the names are
    checked against the nodes' parameter specs here, before the run. ``use_sim_time`` (rclpy's) and
    ``qos_overrides.*`` (rclpy's QoS overrides) are the nodes' too."""
    import difflib
    from depthmarks_ros.params import spec_of
    out = []
    for node, values in overrides.items():
        try:
            known = list(spec_of(node).param_fields())
        except KeyError:
            continue
        for name in values:
            if name in known or name == 'use_sim_time' or name.startswith('qos_overrides.'):
                continue
            close = difflib.get_close_matches(name, known, n=1)
            out.append(f'{node}: {name}' + (f' (did you mean {close[0]}?)' if close else ''))
    return out


def run(args) -> int:
    import sys
    from depthmarks_ros.pipeline.runner import PipelineRunner, RunConfig, node_plan
    from depthmarks_ros.ros.node_base import EXIT_DEADLINE_S
    try:
        overrides = parse_param_overrides(args.param)
    except ValueError as exc:
        print(f'depthmarks run: {exc}', file=sys.stderr)
        return 2
    source = 'video' if args.video else 'camera' if args.camera else 'bag' if args.bag else 'sim'
    nodes = [n.strip() for n in args.nodes.split(',') if n.strip()]
    if args.mono_model and 'mono' not in nodes:
        nodes.append('mono')
    cfg = RunConfig(duration=args.duration, output=args.output, nodes=nodes, source=source, video=args.video,
                    camera=args.camera, bag=args.bag, record=not args.no_record, record_rate=args.record_rate,
                    use_dds_profile=not args.no_dds_profile, rate=args.rate, mono_model=args.mono_model,
                    progress=not args.quiet, multi_process=args.multi_process, compose='false' if args.no_compose else args.compose, overrides=overrides,
                    start=[n.strip() for n in args.start.split(',') if n.strip()] or None,
                    namespace=args.namespace, frame_prefix=args.frame_prefix, use_sim_time=args.use_sim_time,
                    # the process ends after the run: a bounded exit (not where main() was called by a caller)
                    exit_deadline_s=EXIT_DEADLINE_S if getattr(args, 'own_process', False) else None)
    try:
        planned = node_plan(cfg)
    except ValueError as exc:
        print(f'depthmarks run: {exc}', file=sys.stderr)
        return 2
    unknown = unknown_params(overrides) if args.multi_process else []   # one process: the runner asks the nodes
    if unknown:
        print(f'depthmarks run: --param names no node declares, ignored by the nodes: {"; ".join(unknown)} '
              f'(`depthmarks params NODE` lists them)', file=sys.stderr)
    idle = sorted(set(overrides) - set(planned))
    if idle:
        print(f'depthmarks run: --param for {", ".join(idle)}, which this run does not start: ignored', file=sys.stderr)
    metrics = PipelineRunner(cfg).run()
    summary = {t: m['rate_hz'] for t, m in metrics['topics'].items() if not t.startswith('/')}
    print(json.dumps({'output': args.output, 'rates_hz': summary,
                      'accuracy': metrics.get('accuracy_vs_ground_truth', {}),
                      'skipped': metrics.get('skipped', {})}, indent=2))
    return 0
