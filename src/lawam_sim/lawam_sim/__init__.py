"""MuJoCo twins of the LaWAM robots (ROS-free core).

Scenes (``lawam_sim.scenes``), controllers, scripted experts and cameras live here without any ROS import;
``lawam_sim.nodes`` holds the thin rclpy adapters (``franka_twin``, ``quanta_twin``).
"""
from lawam_sim.seeds import EVAL_SEEDS  # noqa: F401
