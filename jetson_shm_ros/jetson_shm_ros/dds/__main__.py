"""
`python -m jetson_shm_ros.dds producer|consumer [options]`: the nodes without ROS 2.

Options mirror the node parameters (`--rate_hz 60` or `--rate-hz 60`); the namespace that
`--ros-args -r __ns:=/x` gives a node is `--namespace /x` here. ROS_DOMAIN_ID,
ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS and CYCLONEDDS_URI are honored.
"""

import argparse
from dataclasses import asdict
import logging
import sys
from typing import List, Optional

from jetson_shm_ros.core.backend import BACKENDS, MODES
from jetson_shm_ros.core.runner import run_guarded
from jetson_shm_ros.core.segment import POLICIES
from jetson_shm_ros.dds.peers import (
    ConsumerOptions, DdsConsumer, DdsProducer, DEFAULT_TOPIC, ProducerOptions)


def _shape(text: str) -> List[int]:
    """Parse '[1080,1920,3]', '1080,1920,3' or '1080x1920x3'."""
    parts = text.strip().strip('[]').replace('x', ',').split(',')
    try:
        return [int(part) for part in parts if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a shape such as [1080,1920,3]')


def _option(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    spellings = [f'--{name}'] + ([f'--{name.replace("_", "-")}'] if '_' in name else [])
    parser.add_argument(*spellings, dest=name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (options named like the node parameters)."""
    parser = argparse.ArgumentParser(
        prog='python -m jetson_shm_ros.dds',
        description='jetson_shm_ros producer/consumer over Cyclone DDS, without ROS 2.')
    roles = parser.add_subparsers(dest='role', required=True, metavar='producer|consumer')
    producer = roles.add_parser('producer', help='fill shared-memory slots, publish descriptors')
    defaults = ProducerOptions()
    _option(producer, 'topic', default=DEFAULT_TOPIC, help='descriptor topic (ROS name)')
    _option(producer, 'shm_name', default='', help='POSIX shared-memory name; empty: derived')
    _option(producer, 'slots', type=int, default=defaults.slots, help='frames in flight')
    _option(producer, 'dtype', default=defaults.dtype, help='element type, e.g. uint8')
    _option(producer, 'shape', type=_shape, default=list(defaults.shape),
            help='frame shape, e.g. [1080,1920,3]')
    _option(producer, 'rate_hz', type=float, default=defaults.rate_hz, help='frames per second')
    _option(producer, 'frames', type=int, default=0, help='frames to send; 0 = endless')
    _option(producer, 'policy', choices=POLICIES, default=defaults.policy)
    _option(producer, 'checksum', action=argparse.BooleanOptionalAction, default=True,
            help='publish the payload checksum')
    _option(producer, 'wait_for_consumers', type=int, default=0,
            help='do not publish before this many subscriptions matched (reliable policy: '
                 'also wait for this many consumers before reusing a slot)')
    _option(producer, 'release_timeout_s', type=float, default=defaults.release_timeout_s,
            help='reliable policy: longest wait for a consumer to release a slot')
    _option(producer, 'frame_id', default='', help='header.frame_id of every descriptor')
    consumer = roles.add_parser('consumer', help='map the segment, verify every frame')
    _option(consumer, 'topic', default=DEFAULT_TOPIC, help='descriptor topic (ROS name)')
    _option(consumer, 'frames', type=int, default=0,
            help='descriptors to handle before exiting; 0 = endless')
    _option(consumer, 'idle_timeout_s', type=float, default=0.0,
            help='exit when no descriptor arrived for this long after the first; 0 = never')
    _option(consumer, 'queue_depth', type=int, default=ConsumerOptions().queue_depth,
            help="descriptor queue depth; at least the producer's slot count")
    _option(consumer, 'allow_group_access', action=argparse.BooleanOptionalAction,
            default=False, help="accept segments the owner's group may write")
    for role in (producer, consumer):
        _option(role, 'backend', choices=BACKENDS, default='auto')
        _option(role, 'mode', choices=MODES, default='zero_copy')
        _option(role, 'status_period_s', type=float, default=5.0,
                help='seconds between status lines')
        _option(role, 'namespace', default='/',
                help='node namespace for relative topics and the default shm_name')
    return parser


def _stop(peer, interrupted: bool) -> int:
    peer.shutdown(interrupted)
    return getattr(peer, 'exit_code', 0)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one peer until it is finished or interrupted; always unlink and unmap."""
    args = vars(build_parser().parse_args(argv))
    role = args.pop('role')
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='[%(levelname)s] [%(created).6f] [%(name)s]: %(message)s')
    make, options = (DdsProducer, ProducerOptions) if role == 'producer' else \
        (DdsConsumer, ConsumerOptions)
    options = options(**{key: value for key, value in args.items()
                         if key in asdict(options())})
    return run_guarded(lambda: make(options), lambda peer: peer.run(), _stop)


if __name__ == '__main__':
    sys.exit(main())
