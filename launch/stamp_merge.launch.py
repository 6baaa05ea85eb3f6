"""stamp_merge alone, parameters from config/stamp_merge.yaml (see docs/multihost.md):

    ros2 launch depthmarks_ros stamp_merge.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('stamp_merge')
