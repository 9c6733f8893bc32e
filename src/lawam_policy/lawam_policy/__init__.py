"""LaWAM policy: the model (ROS-free), the deployment runtime (ROS-free) and thin rclpy nodes."""
