"""The package as a ROS 2 package: ROS-free core, declared dependencies, entry points, colcon build."""
import ast
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
PKG = os.path.join(ROOT, 'depthmarks_ros')

# third-party import -> the package.xml key that provides it (None: installed by scripts/setup.sh only)
IMPORT_TO_KEY = {
    'rclpy': 'rclpy', 'builtin_interfaces': 'builtin_interfaces', 'std_msgs': 'std_msgs',
    'sensor_msgs': 'sensor_msgs', 'stereo_msgs': 'stereo_msgs', 'geometry_msgs': 'geometry_msgs',
    'visualization_msgs': 'visualization_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'rcl_interfaces': 'rcl_interfaces', 'ament_index_python': 'ament_index_python',
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml', 'scipy': 'python3-scipy',
    'skimage': 'python3-skimage', 'torch': 'python3-torch', 'mediapipe': 'python3-mediapipe-pip',
    'psutil': 'python3-psutil', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'open3d': 'python3-open3d-pip', 'transformers': 'python3-transformers-pip', 'dlib': 'python3-dlib-pip',
    'face_recognition_models': None, 'mcap': None, 'mcap_ros2': None,
    'huggingface_hub': 'python3-huggingface-hub-pip', 'safetensors': None, 'matplotlib': 'python3-matplotlib',
    'PIL': None, 'rosbags': 'python3-rosbags-pip', 'pytest': None, 'hypothesis': None, 'launch_pytest': None, 'launch_testing': None,
    'launch_testing_ros': None, 'onnxruntime': 'python3-onnxruntime-pip',
}


def _py_files(folder):
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if f.endswith('.py'):
                yield os.path.join(root, f)


def _imports(path):
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split('.')[0]


def test_core_convert_and_params_never_import_rclpy():
    offenders = []
    for sub in ('core', 'convert', 'params'):   # params: the node specs, read by the CLI without ROS
        for path in _py_files(os.path.join(PKG, sub)):
            if 'rclpy' in set(_imports(path)):
                offenders.append(os.path.relpath(path, ROOT))
    assert offenders == [], f'ROS-free modules import rclpy: {offenders}'


def _docstrings(tree):
    """The docstring nodes of a module's, classes' and functions' bodies (prose, not a use)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                yield first.value


@pytest.mark.parametrize('constant', ['PROFILES_ENV', 'LOOPBACK_PROFILE', 'NETWORK_PROFILE'])
def test_the_fast_dds_profiles_variable_and_files_are_named_once(constant):
    """One source per fact: every use of Fast DDS's profiles file variable, and of the package's
    profile files, in the package, benchmarks and tests goes through publication.PROFILES_ENV /
    LOOPBACK_PROFILE (loopback_profile()) / NETWORK_PROFILE (a second spelling could drift from it):
    no string but a docstring holds the name, in a path ('config/<file>'), a message or an f-string's
    text (help texts format it from the constant)."""
    from depthmarks_ros.pipeline import publication
    assert publication.PROFILES_ENV == 'FASTDDS_DEFAULT_PROFILES_FILE'          # the name Fast DDS reads
    assert os.path.isfile(os.path.join(ROOT, 'config', publication.NETWORK_PROFILE))
    assert os.path.isfile(publication.loopback_profile())
    value = getattr(publication, constant)
    spelled = []
    for folder in (PKG, os.path.join(ROOT, 'benchmarks'), os.path.join(ROOT, 'test')):
        for path in (p for p in _py_files(folder) if p != os.path.abspath(__file__)):   # not this check
            tree = ast.parse(open(path, encoding='utf-8').read(), path)
            prose = {id(d) for d in _docstrings(tree)}
            for node in ast.walk(tree):
                if ((isinstance(node, ast.Constant) and isinstance(node.value, str) and value in node.value
                     and id(node) not in prose)
                        or (isinstance(node, ast.keyword) and node.arg == value)):
                    spelled.append(f'{os.path.relpath(path, ROOT)}:{node.lineno}')
    assert len(spelled) == 1 and spelled[0].startswith('depthmarks_ros/pipeline/publication.py'), spelled


def test_every_third_party_import_is_declared():
    stdlib = set(sys.stdlib_module_names)
    deps = {e.text for e in ET.parse(os.path.join(ROOT, 'package.xml')).getroot()
            if e.tag in ('exec_depend', 'depend', 'test_depend')}
    requirements = open(os.path.join(ROOT, 'requirements.txt')).read()
    unknown, undeclared = set(), set()
    for folder in (PKG, os.path.join(ROOT, 'launch')):
        for path in _py_files(folder):
            for mod in _imports(path):
                if mod in stdlib or mod in ('depthmarks_ros', '__future__'):
                    continue
                if mod not in IMPORT_TO_KEY:
                    unknown.add(f'{mod} ({os.path.relpath(path, ROOT)})')
                elif IMPORT_TO_KEY[mod] is not None and IMPORT_TO_KEY[mod] not in deps:
                    undeclared.add(mod)
    assert not unknown, f'imports with no dependency mapping (add to package.xml/requirements): {unknown}'
    assert not undeclared, f'imports missing from package.xml: {undeclared}'
    for pin in ('numpy==', 'ros-rclpy==', 'torch==', 'mediapipe=='):
        assert pin in requirements


def test_console_scripts_point_at_real_mains():
    from depthmarks_ros.testing.scenes import package_executables
    nodes = [n for n in package_executables() if n != 'depthmarks']   # setup.py's NODES
    assert 'stereo_depth' in nodes and 'sim_rig' in nodes
    for name in nodes:
        path = os.path.join(PKG, 'nodes', f'{name}.py')
        assert os.path.isfile(path), f'console script {name} has no module {path}'
        tree = ast.parse(open(path).read())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assigns = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assert 'main' in names and 'NODE_CLASS' in assigns, f'{name}: needs main() and NODE_CLASS'


def test_cli_subcommands_exist():
    from depthmarks_ros.cli.main import SUBCOMMANDS
    missing = [m for m, _ in SUBCOMMANDS.values()
               if not os.path.isfile(os.path.join(ROOT, *m.split('.')) + '.py')]
    assert missing == []


@pytest.mark.slow
def test_colcon_build_installs_executables_and_share(tmp_path):
    colcon = os.path.join(os.path.dirname(sys.executable), 'colcon')
    if not os.path.exists(colcon):
        pytest.skip('colcon not installed')
    ws = tmp_path / 'ws'
    (ws / 'src').mkdir(parents=True)
    os.symlink(ROOT, ws / 'src' / 'depthmarks_ros')
    env = dict(os.environ, AMENT_PREFIX_PATH=os.path.dirname(os.path.dirname(sys.executable)))
    r = subprocess.run([colcon, 'build', '--build-base', str(ws / 'build'), '--install-base', str(ws / 'install')],
                       cwd=ws, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    lib = ws / 'install' / 'depthmarks_ros' / 'lib' / 'depthmarks_ros'
    for exe in ('sim_rig', 'stereo_depth', 'depth_fusion', 'face_landmarks', 'body_pose', 'depthmarks'):
        assert (lib / exe).exists(), exe
    share = ws / 'install' / 'depthmarks_ros' / 'share' / 'depthmarks_ros'
    assert (share / 'package.xml').exists()
    assert (share / 'config' / 'sim_rig' / 'rig.yaml').exists()
    from depthmarks_ros.pipeline.publication import loopback_profile
    assert os.path.isfile(loopback_profile(str(share / 'config')))
    shutil.rmtree(ws / 'build', ignore_errors=True)


@pytest.mark.parametrize('preset, expected', [(None, '1'), ('2', '2')])
def test_package_import_caps_openblas_threads_unless_set(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_NUM_THREADS'}
    if preset is not None:
        env['OPENBLAS_NUM_THREADS'] = preset
    env['PYTHONPATH'] = ROOT
    out = subprocess.run([sys.executable, '-c', 'import os, depthmarks_ros; print(os.environ["OPENBLAS_NUM_THREADS"])'],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected
