from glob import glob
import os
import shutil
import tempfile

from setuptools import Extension
from setuptools import find_packages
from setuptools import setup
from setuptools.command.build_ext import build_ext

package_name = 'jetson_shm_ros'

# The ROS-free Cyclone DDS peer (jetson_shm_ros.dds) derives its DDS type from
# DataDescriptor.msg at run time, where no ROS package may be installed: ship a copy of the
# interface package's file beside it (git-ignored; jetson_shm_ros/dds/idl.py falls back to the
# sibling source file in a source checkout).
HERE = os.path.dirname(os.path.abspath(__file__))
MSG_SOURCE = os.path.join(HERE, '..', 'jetson_shm_ros_interfaces', 'msg', 'DataDescriptor.msg')
MSG_COPY = os.path.join(HERE, package_name, 'dds', 'DataDescriptor.msg')


def copy_msg() -> None:
    """Refresh the packaged copy of DataDescriptor.msg (atomically: builds may run in parallel)."""
    if not os.path.isfile(MSG_SOURCE):
        return  # an sdist or a copy of this package alone: keep the copy it carries
    with open(MSG_SOURCE, 'rb') as source:
        text = source.read()
    if os.path.isfile(MSG_COPY):
        with open(MSG_COPY, 'rb') as copy:
            if copy.read() == text:
                return
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(MSG_COPY), suffix='.tmp')
    with os.fdopen(handle, 'wb') as copy:
        copy.write(text)
    os.chmod(temporary, 0o644)
    shutil.move(temporary, MSG_COPY)


copy_msg()

# Atomics with stated memory order for the sequence lock and slot claims (C11 __atomic builtins;
# gcc is on every Jetson). Python has no way to express them.
ATOMICS = Extension(package_name + '.core._atomics',
                    sources=[os.path.join(package_name, 'core', '_atomics.c')],
                    extra_compile_args=['-std=gnu11', '-O2', '-Wall'])
# The payload checksum on the CPU, once per frame on each side: NumPy's dispatch costs more
# than summing 4 KiB, and a C loop reads large frames closer to memory bandwidth.
CHECKSUM = Extension(package_name + '.core._checksum',
                     sources=[os.path.join(package_name, 'core', '_checksum.c')],
                     extra_compile_args=['-std=gnu11', '-O3', '-Wall'])
# A teardown deadline enforced without the GIL (process.teardown): the middleware can deadlock
# in C while the main thread holds it, so no Python thread could end the process.
DEADLINE = Extension(package_name + '.process._deadline',
                     sources=[os.path.join(package_name, 'process', '_deadline.c')],
                     extra_compile_args=['-std=gnu11', '-O2', '-Wall'])


class BuildExtAndSourceCopy(build_ext):
    """
    Build the extension, then also place it beside the sources (git-ignored).

    `colcon test` runs pytest in the source directory, where `jetson_shm_ros` is the source
    package, not the installed one: the extension must be importable there too.
    """

    def run(self):
        super().run()
        if self.inplace:
            return
        for extension in self.extensions:
            built = self.get_ext_fullpath(extension.name)
            target = os.path.join(HERE, *extension.name.split('.')[:-1], os.path.basename(built))
            # Atomically: a process may have the old file mapped, builds may run in parallel.
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(target), suffix='.tmp')
            os.close(handle)
            shutil.copyfile(built, temporary)
            os.chmod(temporary, 0o755)
            os.replace(temporary, target)


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name + '.dds': ['DataDescriptor.msg']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob(os.path.join('launch', '*.py'))),
        (os.path.join('share', package_name, 'config'), glob(os.path.join('config', '*.yaml'))),
    ],
    ext_modules=[ATOMICS, CHECKSUM, DEADLINE],
    cmdclass={'build_ext': BuildExtAndSourceCopy},
    install_requires=['setuptools'],
    zip_safe=False,
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
            'image_to_shm = jetson_shm_ros.nodes.image_to_shm:main',
            'shm_to_image = jetson_shm_ros.nodes.shm_to_image:main',
            'image_filter = jetson_shm_ros.nodes.image_filter:main',
            'shm_recorder = jetson_shm_ros.nodes.shm_recorder:main',
            'shm_player = jetson_shm_ros.nodes.shm_player:main',
        ],
    },
)
