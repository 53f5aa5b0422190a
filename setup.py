"""Installs lma_perception for colcon (ament_python) and for plain pip alike."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'lma_perception'

setup(
    name=PACKAGE,
    version='0.1.0',
    description='Real-time video semantic segmentation for ROS 2 (ERFNet + LMA)',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=[PACKAGE, f'{PACKAGE}.*']),
    package_data={PACKAGE: ['weights/*.safetensors', 'weights/*.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.py')),
        (f'share/{PACKAGE}/config', glob('config/*')),
    ],
    # Exact versions are pinned in requirements.txt; these are the minimums the code needs.
    # rclpy and the ROS messages come from the ROS install or the PyPI ROS wheels.
    install_requires=[
        'numpy>=1.24',
        'torch>=2.4',
        'opencv-python-headless>=4.8',
        'rosbags>=0.10',
        'safetensors>=0.4',
        'PyYAML>=6',
        'matplotlib>=3.7',
        'tqdm>=4.60',
    ],
    zip_safe=True,
    # `colcon test` runs pytest only for a package that declares it; setuptools 72 and later no
    # longer know `tests_require`, so without this colcon falls back to unittest and runs nothing.
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'lma-perception = lma_perception.cli:main',
            'segment_node = lma_perception.ros.segment_node:main',
            'segment_lifecycle_node = lma_perception.ros.lifecycle_node:main',
            'bag_player = lma_perception.ros.bag_player:main',
        ],
    },
)
