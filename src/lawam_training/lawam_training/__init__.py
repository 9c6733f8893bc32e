"""LaWAM training: teleop recording and rosbag import into LeRobot datasets, stage-1/stage-2 training, finetune.

Data side:
  recorder_node  live topics -> LeRobot v3.0 dataset; Start/Stop/DiscardEpisode services; atomic episodes
  teleop_node    keyboard / SpaceMouse -> single-step ActionChunk EEF targets on /lawam/teleop/command
  bag_import     rosbag2 (sqlite3, MCAP) -> LeRobot dataset (lawam-bag-to-lerobot)
  record_bag     configured topics -> MCAP rosbag2 bag without `ros2 bag` (lawam-record-bag)
  episode_store  the atomic episode writer both use (stage each episode, journaled commit, crash recovery)
  data           LeRobot datasets -> training samples/batches (images at t and t+T, native-rate EEF chunks,
                 masks and physical-time stamps; several control rates in one batch)
  topics, conversions, msgdefs, testing   topic configuration, message conversion, bag typestore, test helpers
"""
