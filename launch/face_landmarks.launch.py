"""face_landmarks alone, parameters from config/face_landmarks.yaml:

    ros2 launch depthmarks_ros face_landmarks.launch.py [namespace:=NS] [use_sim_time:=true] [use_dds_profile:=false]
"""
from depthmarks_ros.launch_utils import single_node_description


def generate_launch_description():
    return single_node_description('face_landmarks')
