"""The installed commands (scripts/setup.sh installs the package into the venv): `depthmarks`, its
sub-commands and one executable per node, in PREFIX/bin and PREFIX/lib/depthmarks_ros (launch_ros),
and share/depthmarks_ros found through the ament index.

Every command runs with this checkout first on PYTHONPATH (test/conftest.py sets it), so a copy
installed from another checkout sharing the venv is never what is tested; the first test checks it.
"""
import os
import subprocess
import sys

from depthmarks_ros.pipeline.publication import LOOPBACK_PROFILE
from depthmarks_ros.testing.scenes import SETUP_HINT, package_executables

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
PREFIX = sys.prefix


def test_depthmarks_command_runs_this_checkout():
    exe = os.path.join(PREFIX, 'bin', 'depthmarks')
    assert os.access(exe, os.X_OK), f'{exe} missing: {SETUP_HINT}'
    out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('depthmarks_ros ') and f'({os.path.join(ROOT, "depthmarks_ros")})' in out.stdout
    help_out = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=60)
    assert help_out.returncode == 0 and 'run' in help_out.stdout and 'fuse-kitti' in help_out.stdout


def _installed(name: str) -> str:
    """PREFIX/lib/depthmarks_ros/NAME (where launch_ros looks), a link to the console script in bin/."""
    exe = os.path.join(PREFIX, 'bin', name)
    assert os.access(exe, os.X_OK), f'{exe} missing: {SETUP_HINT}'
    first = open(exe).readline()
    assert first.startswith('#!') and 'python' in first, f'{exe} is not a Python console script'
    lib = os.path.join(PREFIX, 'lib', 'depthmarks_ros', name)
    assert os.access(lib, os.X_OK), f'{lib} missing (launch_ros looks there): {SETUP_HINT}'
    assert os.path.realpath(lib) == os.path.realpath(exe)
    return lib


def test_every_executable_in_bin_and_in_lib_for_launch_ros():
    for name in package_executables():
        _installed(name)


def test_the_container_of_shared_processes_is_installed_for_launch_ros():
    """The launch files start the nodes that share a process (sim_rig, stereo_depth and depth_fusion) as
    `depthmarks_container NODE...` (pipeline/graph.py CONTAINER, pipeline/container.py)."""
    from depthmarks_ros.pipeline.graph import CONTAINER
    out = subprocess.run([_installed(CONTAINER)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'usage: depthmarks_container NODE' in out.stderr, out.stderr


def test_share_directory_found_through_the_ament_index():
    code = ('from ament_index_python.packages import get_package_share_directory as g, get_package_prefix as p;'
            'print(g("depthmarks_ros")); print(p("depthmarks_ros"))')
    env = dict(os.environ, AMENT_PREFIX_PATH=PREFIX)
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    share, prefix = out.stdout.split()
    assert os.path.realpath(prefix) == os.path.realpath(PREFIX)
    for rel in ('package.xml', 'launch/full_pipeline.launch.py', 'launch/full_pipeline.launch.xml',
                'config/sim_rig/rig.yaml', f'config/{LOOPBACK_PROFILE}', 'config/stereo_depth.yaml'):
        assert os.path.isfile(os.path.join(share, rel)), rel


def test_every_subcommand_help_through_the_installed_entry_point():
    """`depthmarks SUB --help` for every sub-command, in one interpreter (each imports its module)."""
    code = '''
import sys
from importlib.metadata import entry_points
ep = [e for e in entry_points(group='console_scripts') if e.name == 'depthmarks'][0]
main = ep.load()
from depthmarks_ros.cli.main import SUBCOMMANDS
bad = []
for sub in SUBCOMMANDS:
    try:
        main([sub, '--help'])
        bad.append(sub + ': returned instead of exiting')
    except SystemExit as e:
        if e.code != 0:
            bad.append(f'{sub}: exit {e.code}')
print('BAD', bad)
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=240, cwd='/')
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'BAD []' in out.stdout, out.stdout[-2000:]
    for sub in ('run', 'stereo', 'fuse-kitti', 'face', 'body', 'mono'):
        assert f'usage: depthmarks {sub}' in out.stdout
