"""Static checks of every launch file (runs everywhere, with or without the ROS 2 launch system):
it parses, every executable it names is installed by this package (or is tf2_ros / rviz2), every
config file it names exists, and every launch argument has a description."""
import ast
import os
import re
import xml.etree.ElementTree as ET

import pytest

from depthmarks_ros.testing.scenes import package_executables

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
LAUNCH = os.path.join(ROOT, 'launch')
PY_FILES = sorted(f for f in os.listdir(LAUNCH) if f.endswith('.launch.py'))


def _package_executables():
    return set(package_executables())


def test_one_launch_file_per_node_of_the_graph_and_the_full_pipeline():
    """The node list is pipeline/graph.py's NODES; `ros2 launch` finds a node's launch file by its name, so
    the files cannot read it: one per node of the graph, none for another, each starting its own node."""
    from depthmarks_ros.pipeline.graph import NODES
    names = {f[:-len('.launch.py')] for f in PY_FILES}
    assert names == set(NODES) | {'full_pipeline'}
    for node in NODES:
        tree = ast.parse(open(os.path.join(LAUNCH, f'{node}.launch.py')).read())
        started = [c.args[0].value for c in ast.walk(tree)
                   if isinstance(c, ast.Call) and getattr(c.func, 'id', '') == 'single_node_description']
        assert started == [node], f'{node}.launch.py starts {started}'


@pytest.mark.parametrize('name', PY_FILES)
def test_python_launch_file(name):
    tree = ast.parse(open(os.path.join(LAUNCH, name)).read(), name)
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in funcs
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        fname = getattr(call.func, 'id', getattr(call.func, 'attr', ''))
        kw = {k.arg: k.value for k in call.keywords}
        if fname == 'DeclareLaunchArgument':
            assert 'description' in kw, f'{name}: launch argument without description'
        if fname == 'Node' and 'executable' in kw and isinstance(kw['executable'], ast.Constant):
            exe = kw['executable'].value
            pkg = kw['package'].value
            assert pkg in ('tf2_ros', 'rviz2') or exe in _package_executables(), f'{name}: unknown executable {exe}'
        if fname in ('node', 'single_node_description') and call.args and isinstance(call.args[0], ast.Constant):
            assert call.args[0].value in _package_executables(), f'{name}: unknown executable {call.args[0].value}'
    config_files = {f for _root, _dirs, files in os.walk(os.path.join(ROOT, 'config')) for f in files}
    for s in strings:
        if re.fullmatch(r'[\w./-]+\.(yaml|rviz|xml)', s):
            assert os.path.basename(s) in config_files, f'{name}: names missing config file {s}'


def test_graph_arguments_have_descriptions_and_the_bool_ones_choices():
    from depthmarks_ros.pipeline.graph import ARGUMENTS, BOOL, COMPOSE_CHOICES
    for a in ARGUMENTS:
        assert a.description.strip(), a.name
        if a.default in BOOL:   # a boolean argument (compose adds choices: all, people)
            assert a.choices == BOOL or (a.name == 'compose' and a.choices == COMPOSE_CHOICES), \
                f'{a.name}: a boolean argument declares choices true/false'
        if a.choices:
            assert a.default in a.choices, a.name


def test_graph_maps_every_executable_to_an_existing_params_file():
    """setup.py's console scripts (a list the build reads without importing the package) are the graph's nodes."""
    from depthmarks_ros.pipeline.graph import NODES
    assert set(NODES) == _package_executables() - {'depthmarks'}
    for exe, spec in NODES.items():
        assert os.path.isfile(os.path.join(ROOT, 'config', spec.params_file)), f'{exe}: config/{spec.params_file} missing'


def test_xml_twin_declares_and_forwards_every_graph_argument_with_its_choices():
    from depthmarks_ros.pipeline.graph import ARGUMENTS
    tree = ET.parse(os.path.join(LAUNCH, 'full_pipeline.launch.xml')).getroot()
    declared = {a.get('name'): a for a in tree.findall('arg')}
    assert all(a.get('description') for a in declared.values())
    forwarded = {a.get('name'): a.get('value') for a in tree.find('include').findall('arg')}
    assert list(declared) == list(forwarded) == [a.name for a in ARGUMENTS]
    for a in ARGUMENTS:
        assert declared[a.name].get('default') == a.default, a.name
        assert tuple(c.get('value') for c in declared[a.name].findall('choice')) == a.choices, a.name
        assert forwarded[a.name] == f'$(var {a.name})'


def test_rviz_config_names_pipeline_topics_with_best_effort_clouds():
    import yaml
    cfg = yaml.safe_load(open(os.path.join(ROOT, 'config', 'depthmarks.rviz')))
    displays = cfg['Visualization Manager']['Displays']
    topics = {d['Topic']['Value']: d for d in displays if 'Topic' in d}
    for t in ('/fusion/points', '/lidar/points', '/fusion/depth', '/face/markers', '/body/markers', '/face/head_pose'):
        assert t in topics
    for t in ('/fusion/points', '/lidar/points'):
        assert topics[t]['Topic']['Reliability Policy'] == 'Best Effort'  # matches reliable and best-effort publishers
    assert cfg['Visualization Manager']['Global Options']['Fixed Frame'] == 'base_link'
