"""The LaWAM system's own topic and service names, defined once (robot-specific topics live in the
embodiment registry, lawam_policy.embodiments). ROS-free."""

TASK_TOPIC = "/lawam/task"                      # std_msgs/String instruction
SET_TASK_SERVICE = "/lawam/set_task"            # lawam_msgs/SetTask
CHUNK_TOPIC = "/lawam/action_chunk"             # lawam_msgs/ActionChunk, policy -> bridges
POLICY_STATUS_TOPIC = "/lawam/policy_status"    # lawam_msgs/PolicyStatus
BRIDGE_STATUS_TOPIC = "/lawam/bridge_status"    # lawam_msgs/BridgeStatus
HEATMAP_TOPIC = "/lawam/subgoal_heatmap"        # sensor_msgs/Image (rgb8)
TELEOP_COMMAND_TOPIC = "/lawam/teleop/command"  # lawam_msgs/ActionChunk from teleop / the scripted expert
