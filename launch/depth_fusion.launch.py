"""depth_fusion alone, parameters from config/depth_fusion.yaml:

    ros2 launch depthmarks_ros depth_fusion.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('depth_fusion')
