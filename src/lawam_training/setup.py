import os
from glob import glob

from setuptools import find_packages, setup

package_name = "lawam_training"
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
    description='LaWAM training: teleop recording and rosbag import into LeRobot datasets, stage-1/stage-2 training, finetune.',
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            'recorder = lawam_training.recorder_node:main',
            'teleop = lawam_training.teleop_node:main',
            'bag_to_lerobot = lawam_training.bag_import:cli',
            'lawam-bag-to-lerobot = lawam_training.bag_import:cli',
            'record_bag = lawam_training.record_bag:cli',
            'lawam-record-bag = lawam_training.record_bag:cli',
            'finetune = lawam_training.finetune:main',
            'lawam-finetune = lawam_training.finetune:main',
            'lawam-sim-train = lawam_training.sim_train:main',
            'lawam-average-checkpoints = lawam_training.average_checkpoints:main',
        ],
    },
)
