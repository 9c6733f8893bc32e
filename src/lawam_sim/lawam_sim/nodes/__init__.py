"""Thin rclpy adapters around the ROS-free twins (franka_twin, quanta_twin)."""
