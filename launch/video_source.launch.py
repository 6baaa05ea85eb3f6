"""video_source alone, parameters from config/video_source.yaml:

    ros2 launch depthmarks_ros video_source.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('video_source')
