from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

package_name = 'jetson_shm_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob(os.path.join('launch', '*.py'))),
        (os.path.join('share', package_name, 'config'), glob(os.path.join('config', '*.yaml'))),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='jetson_shm_ros maintainers',
    maintainer_email='maintainers@jetson-shm-ros.dev',
    description='Zero-copy frame transport for ROS 2 on NVIDIA Jetson: payloads in POSIX '
                'shared memory (optionally CUDA-mapped), descriptors over DDS.',
    license='Apache-2.0',
    extras_require={
        'test': ['pytest'],
    },
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'producer = jetson_shm_ros.nodes.producer:main',
            'consumer = jetson_shm_ros.nodes.consumer:main',
        ],
    },
)
