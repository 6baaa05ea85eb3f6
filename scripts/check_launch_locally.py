#!/usr/bin/env python3
"""Run a launch file of the package with the real ROS 2 launch API where `ros2 launch` is not installed.

For developers on a machine with only the PyPI wheels (not used by CI): give it source checkouts of
ros2/launch and ros2/launch_ros. It colcon-builds the package into a temporary install, puts the
launch sources on PYTHONPATH (plus lark and osrf-pycommon, pip-installed into the temporary folder),
adds two import-only stand-ins for what PyPI lacks (a `tf2_ros static_transform_publisher` that
records its arguments and idles, and `composition_interfaces.srv`, which launch_ros imports but the
package's launch files never use), runs the launch file through `launch.LaunchService` for
``--seconds``, measures the output topics from a probe node meanwhile, shuts the launch down as
Ctrl-C would, and prints rates, latencies, the static transforms requested and every process's exit.

    .venv/bin/python scripts/check_launch_locally.py --launch-src ~/src/launch --launch-ros-src ~/src/launch_ros
    .venv/bin/python scripts/check_launch_locally.py ... --launch-file full_pipeline.launch.xml -- rviz:=false
    .venv/bin/python scripts/check_launch_locally.py ... --topics face/landmarks,body/keypoints source:=video video:=clip.mp4

Exit 0 when the launch service ended with 0, every probed topic published and every process exited
cleanly.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
TOPICS = {'stereo/depth': 'sensor_msgs/Image', 'fusion/depth': 'sensor_msgs/Image',
          'face/landmarks': 'sensor_msgs/PointCloud2', 'face/head_pose': 'geometry_msgs/PoseWithCovarianceStamped',
          'body/keypoints': 'sensor_msgs/PointCloud2', 'lidar/points': 'sensor_msgs/PointCloud2'}

STATIC_TF_STUB = '''#!/usr/bin/env python3
# stand-in for tf2_ros static_transform_publisher: records its arguments, idles until SIGINT/SIGTERM
import signal, sys, time
opts = sys.argv[1:sys.argv.index('--ros-args')] if '--ros-args' in sys.argv else sys.argv[1:]
with open(%r, 'a') as f:
    f.write(' '.join(opts) + '\\n')
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda *a: sys.exit(0))
while True:
    time.sleep(1)
'''

DRIVER = '''import sys, threading
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
path, seconds, largs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
ls = LaunchService()
ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    AnyLaunchDescriptionSource(path), launch_arguments=[tuple(a.split(':=', 1)) for a in largs])]))
threading.Timer(seconds, ls.shutdown).start()   # as Ctrl-C: SIGINT to every process, then wait
sys.exit(ls.run())
'''


def _run(cmd, **kw) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        sys.exit(f'{" ".join(cmd[:3])} ... failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}')


def prepare(tmp: str, args) -> dict:
    venv_bin = os.path.dirname(sys.executable)
    install = os.path.join(tmp, 'install')
    _run([os.path.join(venv_bin, 'colcon'), 'build', '--base-paths', ROOT, '--build-base',
          os.path.join(tmp, 'build'), '--install-base', install], cwd=tmp,
         env=dict(os.environ, AMENT_PREFIX_PATH=os.path.dirname(venv_bin)))
    deps = os.path.join(tmp, 'deps')
    _run([sys.executable, '-m', 'pip', 'install', '-q', '--target', deps, 'lark', 'osrf-pycommon'])
    # the sources are not installed: declare the entry points the launch frontends are found by
    for name, group, entry in (('launch_xml', 'launch.frontend.parser', 'xml = launch_xml:Parser'),
                               ('launch_yaml', 'launch.frontend.parser', 'yaml = launch_yaml:Parser'),
                               ('launch_ros', 'launch.frontend.launch_extension', 'launch_ros = launch_ros')):
        info = os.path.join(deps, f'{name}-0.0.0.dist-info')
        os.makedirs(info)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write(f'Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n')
        with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
            f.write(f'[{group}]\n{entry}\n')
    os.makedirs(os.path.join(deps, 'composition_interfaces'))
    open(os.path.join(deps, 'composition_interfaces', '__init__.py'), 'w').close()
    with open(os.path.join(deps, 'composition_interfaces', 'srv.py'), 'w') as f:
        f.write('# import-only stand-in: launch_ros imports it for composable nodes, unused here\n'
                'class LoadNode:\n    class Request: pass\n    class Response: pass\n'
                'class UnloadNode(LoadNode): pass\nclass ListNodes(LoadNode): pass\n')
    stub = os.path.join(tmp, 'stub')
    os.makedirs(os.path.join(stub, 'share', 'ament_index', 'resource_index', 'packages'))
    for pkg in ('tf2_ros', 'launch', 'launch_xml', 'launch_yaml', 'launch_ros'):   # ament index markers
        open(os.path.join(stub, 'share', 'ament_index', 'resource_index', 'packages', pkg), 'w').close()
    # the substitution grammar the frontends read from launch's share folder
    grammar = os.path.join(args.launch_src, 'launch', 'share', 'launch', 'frontend', 'grammar.lark')
    os.makedirs(os.path.join(stub, 'share', 'launch', 'frontend'))
    shutil.copy(grammar, os.path.join(stub, 'share', 'launch', 'frontend'))
    os.makedirs(os.path.join(stub, 'lib', 'tf2_ros'))
    exe = os.path.join(stub, 'lib', 'tf2_ros', 'static_transform_publisher')
    with open(exe, 'w') as f:
        f.write(STATIC_TF_STUB % os.path.join(tmp, 'static_tf_calls.txt'))
    os.chmod(exe, 0o755)
    site = os.path.join(install, 'depthmarks_ros', 'lib', f'python{sys.version_info.major}.{sys.version_info.minor}',
                        'site-packages')
    paths = [os.path.join(args.launch_src, 'launch'), os.path.join(args.launch_src, 'launch_xml'),
             os.path.join(args.launch_src, 'launch_yaml'), os.path.join(args.launch_ros_src, 'launch_ros'), deps, site]
    return dict(AMENT_PREFIX_PATH=os.pathsep.join([os.path.join(install, 'depthmarks_ros'), stub,
                                                   os.path.dirname(venv_bin)]),
                PYTHONPATH=os.pathsep.join(paths))


def probe(seconds: float, topics: dict) -> dict:
    import importlib
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    rclpy.init(args=[])   # not sys.argv: the launch arguments are not ROS arguments
    node = rclpy.create_node('launch_check_probe')
    arrivals = {t: [] for t in topics}
    latency = {t: [] for t in topics}
    for topic, type_name in topics.items():
        pkg, cls = type_name.split('/')
        msg_type = getattr(importlib.import_module(f'{pkg}.msg'), cls)

        def cb(msg, topic=topic):
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            arrivals[topic].append(time.monotonic())
            latency[topic].append((node.get_clock().now().nanoseconds - stamp) / 1e6)
        node.create_subscription(msg_type, topic, cb, QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT))
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    out = {}
    for t in topics:
        a = [x for x in arrivals[t] if x > arrivals[t][0] + 3.0] if arrivals[t] else []
        out[t] = ((len(a) - 1) / (a[-1] - a[0]) if len(a) > 2 else 0.0,
                  float(np.median(latency[t])) if latency[t] else float('nan'), len(arrivals[t]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--launch-src', required=True, help='checkout of github.com/ros2/launch')
    ap.add_argument('--launch-ros-src', required=True, help='checkout of github.com/ros2/launch_ros')
    ap.add_argument('--launch-file', default='full_pipeline.launch.py', help="in the package's launch/")
    ap.add_argument('--seconds', type=float, default=40.0, help='how long the launch runs')
    ap.add_argument('--topics', default=','.join(TOPICS),
                    help="comma-separated outputs that must publish (e.g. face/landmarks,body/keypoints for "
                         "source:=video; '' for none)")
    ap.add_argument('launch_args', nargs='*', help='name:=value launch arguments')
    args = ap.parse_args()
    wanted = [t for t in args.topics.split(',') if t]      # '' = none (nodes only have to start and stop)
    unknown = [t for t in wanted if t not in TOPICS]
    if unknown:
        ap.error(f'unknown topics {unknown}; known: {", ".join(TOPICS)}')
    topics = {t: TOPICS[t] for t in wanted}
    sys.path.insert(0, ROOT)
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    with tempfile.TemporaryDirectory(prefix='depthmarks_launch_') as tmp:
        env = dict(os.environ, **configure_ros_env(log_dir=os.path.join(tmp, 'log')), **prepare(tmp, args))
        launch_file = os.path.join(tmp, 'install', 'depthmarks_ros', 'share', 'depthmarks_ros', 'launch',
                                   args.launch_file)
        log_path = os.path.join(tmp, 'launch.log')
        with open(log_path, 'w') as log:
            proc = subprocess.Popen([sys.executable, '-c', DRIVER, launch_file, str(args.seconds)] + args.launch_args,
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
            time.sleep(min(12.0, args.seconds / 3))   # start-up: processes, model loading, discovery
            figures = probe(max(args.seconds - 16.0, 5.0), topics)
            rc = proc.wait(timeout=args.seconds + 60)
        with open(log_path) as f:
            lines = f.read().splitlines()
        calls_path = os.path.join(tmp, 'static_tf_calls.txt')
        calls = open(calls_path).read().splitlines() if os.path.exists(calls_path) else []
    print(f'{args.launch_file} {" ".join(args.launch_args)}: launch service exit {rc}')
    for t, (rate, lat, n) in figures.items():
        print(f'  {t:16s} {n:5d} msgs  {rate:5.1f} Hz  median latency {lat:6.0f} ms')
    print('static transforms requested:')
    for c in calls:
        print('  ' + c)
    ends = [ln for ln in lines if 'process has finished' in ln or 'process has died' in ln]
    for ln in ends:
        print('  ' + ln)
    silent = [t for t, (_, _, n) in figures.items() if n == 0]
    unclean = [ln for ln in ends if 'cleanly' not in ln]
    if silent:
        print('silent topics: ' + ', '.join(silent))
    if rc != 0 or unclean or not ends:
        print('\n'.join(lines[-30:]))
    return 0 if rc == 0 and not silent and not unclean and ends else 1


if __name__ == '__main__':
    sys.exit(main())
