"""LaWAM training: teleop recording and rosbag import into LeRobot datasets, stage-1/stage-2 training, finetune."""
