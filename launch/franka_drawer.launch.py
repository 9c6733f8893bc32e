"""ros2 launch lawam_bringup franka_drawer.launch.py [use_sim:=true] [checkpoint:=DIR] [task:='...'] ...

Built from the system description in lawam_bringup/systems.py, the same one `lawam launch franka_drawer` runs.
"""
from lawam_bringup.ros_launch import generate_launch_description_for


def generate_launch_description():
    return generate_launch_description_for("franka_drawer")
