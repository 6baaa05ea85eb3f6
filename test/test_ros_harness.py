"""The test harness itself (depthmarks_ros/testing/ros_harness.py): a test run leaves no file behind."""
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))

RUN = '''
import json, os
from depthmarks_ros.testing.ros_harness import NodeProcess, configure_ros_env, run_dir
env = configure_ros_env(domain_id=7)
node = NodeProcess('zen', module='this').start()
node.proc.wait(30)
code = node.stop()
print(json.dumps({'code': code, 'output': node.output, 'log': node.log_path, 'run_dir': run_dir(),
                  'ros_log_dir': env['ROS_LOG_DIR'], 'log_exists': os.path.isfile(node.log_path)}))
'''


def test_node_process_output_outlives_stop_and_the_run_leaves_no_file_in_tmp(tmp_path):
    """A process's NodeProcess logs and ROS_LOG_DIR are in one folder under $TMPDIR, readable after
    the node stopped (a failing test shows them) and removed when the process exits."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    out = subprocess.run([sys.executable, '-c', RUN], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got['code'] == 0 and 'Beautiful is better than ugly' in got['output']
    assert got['log_exists'] and os.path.dirname(got['log']) == got['run_dir']
    assert os.path.dirname(got['ros_log_dir']) == got['run_dir'] and got['run_dir'].startswith(str(tmp))
    assert sorted(os.listdir(tmp)) == [], 'files left in $TMPDIR after the run'
