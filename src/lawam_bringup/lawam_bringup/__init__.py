"""LaWAM system descriptions, launch files and parameters; the `lawam launch` runner for machines without ROS 2 launch tooling."""
