#!/usr/bin/env python3
"""
Rewrite the wheel-build-machine paths in a venv's exported CMake files.

The ROS 2 message wheels (std_msgs, builtin_interfaces, ...) export
``*__rosidl_generator_py`` targets whose INTERFACE_INCLUDE_DIRECTORIES name
``/opt/python/cpXY-cpXY/include/pythonX.Y`` and
``/opt/python/cpXY-cpXY/lib/pythonX.Y/site-packages/numpy/_core/include``:
directories of the machine that built the wheels. CMake refuses targets with
missing include directories, so an interface package depending on them fails to
configure. Point them at this interpreter's include directory and NumPy's.

Run it with the venv's Python after every ``pip install`` into the venv;
it is idempotent.
"""

import glob
import os
import re
import sys
import sysconfig

import numpy

WHEEL_PREFIX = r'/opt/python/cp3\d+-cp3\d+'
NUMPY_RE = re.compile(
    WHEEL_PREFIX + r'/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include')
PYTHON_RE = re.compile(WHEEL_PREFIX + r'/include/python3\.\d+')


def main() -> int:
    """Rewrite the paths under ``sys.prefix``; return a process exit code."""
    prefix = sys.prefix
    python_include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    for path in (python_include, numpy_include):
        if not os.path.isdir(path):
            print(f'fix_venv_cmake_paths: {path} does not exist', file=sys.stderr)
            return 1
    changed = 0
    for path in glob.glob(os.path.join(prefix, 'share', '*', 'cmake', '*.cmake')):
        with open(path, encoding='utf-8') as f:
            text = f.read()
        new = NUMPY_RE.sub(numpy_include, text)
        new = PYTHON_RE.sub(python_include, new)
        if new != text:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(new)
            changed += 1
    print(f'fix_venv_cmake_paths: rewrote {changed} file(s) under {prefix}/share '
          f'(python include {python_include}, numpy include {numpy_include})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
