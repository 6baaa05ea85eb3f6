"""sim_rig alone, parameters from config/sim_rig_node.yaml:

    ros2 launch depthmarks_ros sim_rig.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('sim_rig')
