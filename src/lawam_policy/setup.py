import os
from glob import glob

from setuptools import find_packages, setup

package_name = "lawam_policy"
data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
    (f"share/{package_name}", ["package.xml"]),
]
setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="LaWAM maintainers",
    maintainer_email="lawam@example.com",
    description='LaWAM policy: the model (ROS-free), the asynchronous deployment runtime (ROS-free) and thin rclpy nodes (policy node, Franka Panda and Quanta X1 bridges).',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            'policy_node = lawam_policy.nodes.policy_node:main',
            'franka_bridge = lawam_policy.nodes.franka_bridge:main',
            'quanta_bridge = lawam_policy.nodes.quanta_bridge:main',
            'lawam-build-checkpoint = lawam_policy.model.build_checkpoint:main'
        ],
    },
)
