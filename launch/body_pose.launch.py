"""body_pose alone, parameters from config/body_pose.yaml:

    ros2 launch depthmarks_ros body_pose.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('body_pose')
