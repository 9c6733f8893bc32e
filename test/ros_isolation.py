"""Give every test its own ROS_DOMAIN_ID and keep discovery on localhost, so tests never cross-talk
with each other or reach a robot on the lab network."""
import itertools
import os

# 160..229 stays clear of the ranges helpers use in their own fixtures (30..99, 100..160) and of
# domain 0; Fast DDS on Linux supports ids up to 232.
_counter = itertools.count()


def next_domain_id() -> int:
    return 160 + (os.getpid() * 7 + next(_counter)) % 70


def isolated_ros_env(domain_id: int) -> dict:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["PYTHONUNBUFFERED"] = "1"
    return env
