"""Does changing a DDS content filter's parameters crash the publishing process? (Fast DDS, the
recorder's stamp filter; docs/pipeline.md "Known issues", eProsima/Fast-DDS#4878)

Two processes per try, on a private ROS_DOMAIN_ID with the package's Fast DDS profile (as `depthmarks
run`): one publishes sensor_msgs/CameraInfo as fast as it can for --seconds, once the other matched it
(a try whose publisher never saw the subscriber says nothing and is counted apart); the other subscribes,
raw and reliable as the recorder does, with the recorder's STAMP_FILTER (pipeline/recorder_node.py)
whose parameters it changes every few ms or every --every s (`change`, what the recorder does once
per kept message and topic; the values from the recorder's stamp_filter_params, for the clock's now
and record periods of --period s), set once and never changed (`static`), or with no filter (`none`). The modes are
interleaved; for each try the publisher's and the subscriber's exit status (-11 SIGSEGV, -6 SIGABRT), the
messages received and the load.

    .venv/bin/python benchmarks/study_cft_crash.py --tries 6 --seconds 5

Not a test: it crashes a process on purpose, and how soon depends on the machine.
"""
from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)        # the checkout's package, as the other benchmarks (not the venv's installed copy)

MODES = ('change', 'static', 'none')
MATCH_TIMEOUT = 10.0                # s the publisher waits for the subscriber to match before it publishes
TOPIC = '/study_cft/info'


def publisher(seconds: float) -> None:
    import rclpy
    from sensor_msgs.msg import CameraInfo
    rclpy.init()
    node = rclpy.create_node('study_cft_pub')
    pub = node.create_publisher(CameraInfo, TOPIC, 10)
    start = time.monotonic()        # publish only to a matched subscriber (discovery takes up to ~1 s under load)
    while pub.get_subscription_count() < 1 and time.monotonic() < start + MATCH_TIMEOUT:
        time.sleep(0.01)
    matched = pub.get_subscription_count()
    print(f'matched {matched} after {time.monotonic() - start:.2f} s', flush=True)
    msg = CameraInfo()
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        n += 1
        if n % 50 == 0:
            time.sleep(0.001)
    print(f'published {n}', flush=True)
    node.destroy_node()
    rclpy.shutdown()


def subscriber(mode: str, seconds: float, every: float, period: float) -> None:
    import rclpy
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.subscription_content_filter_options import ContentFilterOptions
    from sensor_msgs.msg import CameraInfo
    from depthmarks_ros.pipeline.recorder_node import OPEN, STAMP_FILTER, stamp_filter_params
    rclpy.init()
    node = rclpy.create_node('study_cft_sub')
    qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=20)
    options = ContentFilterOptions(STAMP_FILTER, list(OPEN)) if mode != 'none' else None
    got = [0]
    sub = node.create_subscription(CameraInfo, TOPIC, lambda _: got.__setitem__(0, got[0] + 1), qos, raw=True,
                                   content_filter_options=options)
    end, changes, next_change, period_ns = time.monotonic() + seconds, 0, 0.0, int(period * 1e9)
    while time.monotonic() < end:   # until the study closes stdin once the publisher exited (`seconds` at most)
        rclpy.spin_once(node, timeout_sec=0.002)
        if select.select([sys.stdin], [], [], 0)[0]:
            break
        if mode == 'change' and time.monotonic() >= next_change:
            next_change = time.monotonic() + every
            sub.set_content_filter(STAMP_FILTER, list(stamp_filter_params(node.get_clock().now().nanoseconds,
                                                                          period_ns)))
            changes += 1
    print(f'filter {sub.is_cft_enabled} changes {changes} received {got[0]}', flush=True)
    node.destroy_node()
    rclpy.shutdown()


def try_once(mode: str, seconds: float, every: float, period: float, env: dict) -> tuple:
    me = [sys.executable, os.path.abspath(__file__)]
    sub = subprocess.Popen(me + ['--role', 'sub', '--mode', mode, '--seconds', str(seconds + MATCH_TIMEOUT + 5),
                                 '--every', str(every),
                                 '--period', str(period)],
                           env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    pub = subprocess.run(me + ['--role', 'pub', '--seconds', str(seconds)], env=env, capture_output=True, text=True)
    time.sleep(0.3)                 # the last messages in flight
    sub_out = sub.communicate('')[0]   # closes its stdin: it stops
    first = next((ln for ln in pub.stderr.splitlines() if ln.strip()), '')   # faulthandler's first line
    matched = any(ln.startswith('matched ') and not ln.startswith('matched 0 ') for ln in pub.stdout.splitlines())
    return pub.returncode, sub.returncode, matched, first, (sub_out.strip().splitlines() or [''])[-1]


def positive(text: str) -> float:
    """argparse type: a number > 0 (a record period of 0 has no next period)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'{text} is not > 0')
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--tries', type=int, default=6, help='tries per mode, interleaved')
    ap.add_argument('--seconds', type=float, default=5.0, help='publishing time per try')
    ap.add_argument('--modes', default=','.join(MODES))
    ap.add_argument('--every', type=float, default=0.0,
                    help='change: s between changes (0: every spin, a few ms; the recorder: 1 s per topic)')
    ap.add_argument('--period', type=positive, default=0.001,
                    help='change: the record period (s) the filter values are built for (stamp_filter_params: from '
                         'the next period on); 1 ms: new values at each change every few ms (the recorder: 1 s)')
    ap.add_argument('--domain', default='77', help='ROS_DOMAIN_ID of the tries (not the one of a running pipeline)')
    ap.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    ap.add_argument('--mode', default='change', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == 'pub':
        return publisher(args.seconds)
    if args.role == 'sub':
        return subscriber(args.mode, args.seconds, args.every, args.period)
    from depthmarks_ros.pipeline.publication import PROFILES_ENV, loopback_profile
    env = dict(os.environ, ROS_DOMAIN_ID=args.domain, PYTHONFAULTHANDLER='1')
    env[PROFILES_ENV] = loopback_profile()
    modes = args.modes.split(',')
    crashed, sub_crashed, sub_failed = ({m: 0 for m in modes} for _ in range(3))
    for i in range(args.tries):
        for mode in modes:
            pub_rc, sub_rc, matched, first, sub_last = try_once(mode, args.seconds, args.every, args.period, env)
            crashed[mode] += pub_rc != 0
            sub_crashed[mode] += sub_rc < 0                 # killed by a signal: the filter's side crashed
            # its filter never ran (an exception: an import error), or the publisher never saw it: says nothing
            sub_failed[mode] += (not matched and pub_rc == 0) or sub_rc > 0   # a crashed publisher is counted above
            print(f'{time.strftime("%H:%M:%S")} try {i + 1} {mode:6s} publisher exit {pub_rc:4d} '
                  f'{"matched" if matched else "UNMATCHED"} subscriber {sub_rc} '
                  f'load {os.getloadavg()[0]:.1f} | {first[:60]} | {sub_last[:80]}', flush=True)
    print('publisher crashed: ' + ', '.join(f'{m} {crashed[m]}/{args.tries}' for m in modes))
    print('subscriber crashed: ' + ', '.join(f'{m} {sub_crashed[m]}/{args.tries}' for m in modes))
    if any(sub_failed.values()):
        print('tries that say nothing (subscriber failed, or the publisher never matched it): '
              + ', '.join(f'{m} {sub_failed[m]}/{args.tries}' for m in modes))


if __name__ == '__main__':
    main()
