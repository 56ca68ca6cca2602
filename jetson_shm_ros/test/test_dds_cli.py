"""
The ROS-free CLI (`python -m jetson_shm_ros.dds`): options, defaults and checks from the schema.

Before the schema, `--rate_hz 0` ended in a ZeroDivisionError traceback; now every value is
checked at start-up with the words the nodes use.
"""

import subprocess
import sys

from jetson_shm_ros.dds.__main__ import build_parser
from jetson_shm_ros.process.role_options import CONSUMER_OPTIONS, PRODUCER_OPTIONS
import pytest

PRODUCER = {option.name: option for option in PRODUCER_OPTIONS}
CONSUMER = {option.name: option for option in CONSUMER_OPTIONS}
START_TIMEOUT_S = 60.0


def _cli(*argv):
    return vars(build_parser().parse_args(list(argv)))


def test_the_cli_has_every_option_with_the_schema_defaults():
    for role, schema in (('producer', PRODUCER), ('consumer', CONSUMER)):
        values = _cli(role)
        assert values.pop('role') == role and values.pop('namespace') == '/'
        assert values == {name: option.default for name, option in schema.items()}


def test_the_cli_parses_like_the_nodes():
    values = _cli('producer', '--rate_hz', '30', '--shape', '[64,64,3]', '--no-checksum',
                  '--wait-for-consumers', '2', '--policy', 'reliable')
    assert values['rate_hz'] == 30.0 and values['shape'] == [64, 64, 3]
    assert values['checksum'] is False and values['wait_for_consumers'] == 2


@pytest.mark.parametrize('argv, words', [
    (['producer', '--rate_hz', '0'], 'rate_hz=0 is not allowed: rate_hz must be a number '
                                     'from 0.001 to 100000'),
    (['producer', '--policy', 'fast'], 'policy must be one of latest, reliable'),
    (['producer', '--shape', '64,0'], 'shape=64,0 is not allowed'),
    (['producer', '--dtype', 'object'], "dtype 'object' is not supported"),
    (['consumer', '--queue_depth', '0'], 'queue_depth must be an integer from 1 to 1024'),
    (['consumer', '--backend', 'gpu'], 'backend must be one of auto, cpu, pinned, cuda_ipc'),
])
def test_the_cli_refuses_bad_values_at_start_up(capsys, argv, words):
    with pytest.raises(SystemExit) as exit_status:
        build_parser().parse_args(argv)
    assert exit_status.value.code == 2
    assert words in capsys.readouterr().err


def test_rate_hz_zero_ends_the_process_with_one_clear_error_not_a_traceback(shm_name):
    done = subprocess.run(
        [sys.executable, '-m', 'jetson_shm_ros.dds', 'producer', '--rate_hz', '0',
         '--shm_name', shm_name], capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 2, done
    assert 'Traceback' not in done.stderr and 'ZeroDivisionError' not in done.stderr
    assert 'rate_hz=0 is not allowed: rate_hz must be a number from 0.001 to 100000' in \
        done.stderr.splitlines()[-1], done.stderr
