"""ament_python build of depthmarks_ros.

Console scripts go to lib/depthmarks_ros (see setup.cfg) so that `ros2 run` and launch_ros
find them; launch/, config/ and the package marker go to share/depthmarks_ros.
"""
import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'depthmarks_ros'

# Executables: ROS nodes (one module each) and the batch command. The nodes are those of
# depthmarks_ros/pipeline/graph.py NODES (the one node list; the build does not import the package):
# test/test_launch_static.py fails where the two disagree.
NODES = [
    'sim_rig',
    'stereo_depth',
    'depth_fusion',
    'mono_depth',
    'face_landmarks',
    'body_pose',
    'video_source',
    'stamp_merge',
]


def _data_files():
    files = [
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ]
    for folder in ('launch', 'config'):
        for root, _dirs, names in os.walk(folder):
            paths = sorted(os.path.join(root, n) for n in names if not n.endswith('.pyc'))
            if paths:
                files.append((os.path.join('share', PACKAGE, root), paths))
    return files


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['data/*']},
    data_files=_data_files(),
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='depthmarks_ros developers',
    maintainer_email='dev@depthmarks.invalid',
    description='Stereo, mono and LiDAR-fused depth, facial landmarks and body keypoints in 3D.',
    license='Apache-2.0',
    # colcon test runs pytest when 'pytest' is a test dependency; setuptools 79 dropped tests_require,
    # colcon reads the 'test' extra (colcon_core.package_augmentation.python)
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [f'{n} = {PACKAGE}.nodes.{n}:main' for n in NODES]
        + [f'depthmarks = {PACKAGE}.cli.main:main',
           # several nodes in one process (the launch files' compose:=true/people/all; pipeline/graph.py COMPOSE_GROUPS)
           f'depthmarks_container = {PACKAGE}.pipeline.container:main'],
    },
)
