# Copyright 2026 jetson_shm_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import os

from ament_flake8.main import main_with_errors
import pytest

# The repository's helper scripts (benchmarks, build fixes) are held to the same style.
SCRIPTS = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts')
BENCH = os.path.join(os.path.dirname(__file__), '..', '..', 'bench')
DOCGEN = os.path.join(os.path.dirname(__file__), '..', '..', 'docgen')


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(
        argv=['.'] + [path for path in (SCRIPTS, BENCH, DOCGEN) if os.path.isdir(path)])
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
