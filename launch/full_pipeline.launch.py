"""The whole depthmarks_ros pipeline; the node graph comes from depthmarks_ros.pipeline.graph
(the same plan `depthmarks run` uses). `ros2 launch depthmarks_ros full_pipeline.launch.py --show-args`
lists every argument with its choices.

    ros2 launch depthmarks_ros full_pipeline.launch.py                  # simulated rig, all nodes
    ros2 launch depthmarks_ros full_pipeline.launch.py source:=topics camera_ns:=/my_cam lidar_topic:=/velodyne_points
    ros2 launch depthmarks_ros full_pipeline.launch.py source:=video video:=/path/clip.mp4 rviz:=true
    ros2 launch depthmarks_ros full_pipeline.launch.py namespace:=rig1 frame_prefix:=rig1/   # one of several rigs
    ros2 launch depthmarks_ros full_pipeline.launch.py nodes:=sim,stereo,tf                  # this host's share
"""
from depthmarks_ros.launch_utils import full_pipeline_description


def generate_launch_description():
    return full_pipeline_description()
