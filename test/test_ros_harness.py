"""The test harness itself (depthmarks_ros/testing/ros_harness.py): a test run leaves no file behind
but its domain's lock file."""
import fcntl
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))

# a test run in small: the harness's environment (a reserved domain), a node process, a launch's
# generated file, rclpy with a node that logs; then exit without rclpy.shutdown (as a failing run may)
RUN = '''
import json, os
from depthmarks_ros.testing.ros_harness import NodeProcess, configure_ros_env, run_dir
env = configure_ros_env()
node = NodeProcess('zen', module='this').start()
node.proc.wait(30)
code = node.stop()
from depthmarks_ros.pipeline import graph as g
rviz = g.write_rviz_config(g.plan(g.GraphConfig()))
import rclpy
rclpy.init()
ros_node = rclpy.create_node(f'harness_check_{os.getpid()}')
ros_node.get_logger().info('harness check: a line in ROS_LOG_DIR')
logs = [os.path.join(r, f) for r, _d, fs in os.walk(env['ROS_LOG_DIR']) for f in fs]
print(json.dumps({'code': code, 'output': node.output, 'log': node.log_path, 'run_dir': run_dir(),
                  'env': env, 'log_exists': os.path.isfile(node.log_path), 'rviz': rviz,
                  'ros_logs': logs}))
'''


def test_a_run_leaves_only_its_domain_lock_in_tmp_and_node_output_outlives_stop(tmp_path):
    """A process's NodeProcess logs, ROS_LOG_DIR (written by rclpy) and ROS_HOME (the launch files'
    generated files) are in one folder under $TMPDIR, there while it runs (a failing test shows
    them) and removed when the process exits, also without rclpy.shutdown; the lock file of the
    domain configure_ros_env reserved is all that stays."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    out = subprocess.run([sys.executable, '-c', RUN], capture_output=True, text=True, timeout=180,
                         env=dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    run_dir, env = got['run_dir'], got['env']
    assert got['code'] == 0 and 'Beautiful is better than ugly' in got['output']
    assert got['log_exists'] and os.path.dirname(got['log']) == run_dir and run_dir.startswith(str(tmp))
    assert os.path.dirname(env['ROS_LOG_DIR']) == run_dir and os.path.dirname(env['ROS_HOME']) == run_dir
    assert got['rviz'].startswith(env['ROS_HOME'] + os.sep)
    assert got['ros_logs'] and all(p.startswith(env['ROS_LOG_DIR'] + os.sep) for p in got['ros_logs'])   # rcl's log file
    assert sorted(os.listdir(tmp)) == [f'depthmarks_ros_domain_{env["ROS_DOMAIN_ID"]}.lock'], \
        'files left in $TMPDIR after the run'


def test_a_domain_lock_that_is_a_link_or_cannot_be_opened_is_passed_over(tmp_path, monkeypatch):
    """$TMPDIR is shared: a symlink (to a file of someone else's) planted under a domain's lock file
    name is neither followed nor truncated, and a name that cannot be opened (here a folder; another
    user's lock file alike) raises nothing: the next id is reserved instead. Its lock is held and its
    file kept as found (no truncation)."""
    from depthmarks_ros.testing import ros_harness
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    monkeypatch.setattr(ros_harness, '_DOMAIN_LOCK', None)   # this run's own lock stays held
    target = tmp_path / 'someone_elses_file'
    target.write_text('keep me')
    os.chmod(target, 0o600)
    last = 20
    for domain in range(1, last):
        path = tmp_path / f'depthmarks_ros_domain_{domain}.lock'
        if domain % 2:
            os.symlink(target, path)
        else:
            os.mkdir(path)
    free = tmp_path / f'depthmarks_ros_domain_{last}.lock'
    free.write_text('reused')
    assert ros_harness.reserve_domain_id(1, last) == last
    fd = ros_harness._DOMAIN_LOCK
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(free))
        with open(free, 'rb') as other:   # another run cannot take it
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken = False
            except BlockingIOError:
                taken = True
        assert taken, 'the reserved domain is not locked'
    finally:
        os.close(fd)
    assert target.read_text() == 'keep me' and os.stat(target).st_mode & 0o777 == 0o600
    assert free.read_text() == 'reused', 'the lock file was truncated'
