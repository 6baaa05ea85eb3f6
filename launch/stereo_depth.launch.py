"""stereo_depth alone, parameters from config/stereo_depth.yaml:

    ros2 launch depthmarks_ros stereo_depth.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('stereo_depth')
