"""`rosdep install --from-paths . --ignore-src` can resolve every key of package.xml for Jazzy and Kilted:
each is a ROS package released in both distributions or a rosdep key of base.yaml / python.yaml with
a rule for Ubuntu Noble. Checked against pinned lists (test/data/rosdistro/, written from a ros/rosdistro
checkout by scripts/update_rosdep_keys.py, which names the commit); no network at test time."""
import os
import xml.etree.ElementTree as ET

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
DATA = os.path.join(ROOT, 'test', 'data', 'rosdistro')
DEPEND_TAGS = ('depend', 'build_depend', 'buildtool_depend', 'exec_depend', 'test_depend', 'build_export_depend',
               'doc_depend')


def _names(fname):
    with open(os.path.join(DATA, fname)) as f:
        return {line.strip() for line in f if line.strip() and not line.startswith('#')}


def test_pinned_lists_name_their_rosdistro_commit():
    for fname in ('rosdep_base.txt', 'rosdep_python.txt', 'jazzy_packages.txt', 'kilted_packages.txt'):
        with open(os.path.join(DATA, fname)) as f:
            first = f.readline()
        assert first.startswith('# from ros/rosdistro ') and len(first.split()[3]) == 40, fname
    assert 'rclpy' in _names('kilted_packages.txt') and 'python3-numpy' in _names('rosdep_python.txt')


def test_every_package_xml_key_resolves_for_jazzy_and_kilted():
    keys = {e.text.strip() for e in ET.parse(os.path.join(ROOT, 'package.xml')).getroot() if e.tag in DEPEND_TAGS}
    rosdep = _names('rosdep_base.txt') | _names('rosdep_python.txt')
    unresolved = {}
    for distro in ('jazzy', 'kilted'):
        packages = _names(f'{distro}_packages.txt')
        missing = sorted(k for k in keys if k not in packages and k not in rosdep)
        if missing:
            unresolved[distro] = missing
    assert not unresolved, f'rosdep cannot resolve: {unresolved}'
    assert 'ament_python' not in keys            # a build type, not a key ("Cannot locate rosdep definition")


def test_pip_only_dependencies_use_the_pip_keys_where_they_exist():
    keys = {e.text.strip() for e in ET.parse(os.path.join(ROOT, 'package.xml')).getroot() if e.tag in DEPEND_TAGS}
    python_keys = _names('rosdep_python.txt')
    for module in ('open3d', 'transformers', 'dlib', 'huggingface-hub', 'mediapipe'):
        key = f'python3-{module}-pip'
        if key in python_keys:
            assert key in keys or f'python3-{module}' in keys, f'{module}: declare {key}'
