"""
`python -m jetson_shm_ros.dds producer|consumer [options]`: the nodes without ROS 2.

Options are the node parameters, from the same schema (process.options): `--rate_hz 60` or
`--rate-hz 60`, `--shape [480,640,3]` or `--shape 480x640x3`, `--checksum`/`--no-checksum`,
with the same ranges and choices. The namespace that `--ros-args -r __ns:=/x` gives a node is
`--namespace /x` here. ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS and
CYCLONEDDS_URI are honored.
"""

import argparse
import logging
import sys
from typing import Callable, List, Optional, Sequence

from jetson_shm_ros.core.errors import OptionError
from jetson_shm_ros.dds.peers import DdsConsumer, DdsProducer
from jetson_shm_ros.process.options import Option
from jetson_shm_ros.process.role_options import CONSUMER_OPTIONS, PRODUCER_OPTIONS
from jetson_shm_ros.process.runner import run_guarded

ROLES = {'producer': (DdsProducer, PRODUCER_OPTIONS,
                      'fill shared-memory slots, publish descriptors'),
         'consumer': (DdsConsumer, CONSUMER_OPTIONS, 'map the segment, verify every frame')}


def _argument_type(option: Option) -> Callable[[str], object]:
    """Parse with the option's own checks; argparse then prints one clear error and exits 2."""
    def parse(text: str):
        try:
            return option.parse(text)
        except OptionError as error:
            raise argparse.ArgumentTypeError(error.detail) from None
    parse.__name__ = option.name
    return parse


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Add one command-line option per schema option (`--a_b` and `--a-b`)."""
    for option in options:
        spellings = [f'--{option.name}']
        if '_' in option.name:
            spellings.append(f'--{option.name.replace("_", "-")}')
        text = f'{option.description}; default {option.default!r}'
        if option.kind is bool:
            parser.add_argument(*spellings, dest=option.name, default=option.default,
                                action=argparse.BooleanOptionalAction, help=text)
            continue
        allowed = '' if option.kind is str and not option.choices else f' ({option.allowed()})'
        parser.add_argument(*spellings, dest=option.name, default=option.default,
                            type=_argument_type(option), help=text + allowed,
                            metavar='{' + ','.join(option.choices) + '}' if option.choices
                            else option.name.upper())


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (options named like the node parameters)."""
    parser = argparse.ArgumentParser(
        prog='python -m jetson_shm_ros.dds',
        description='jetson_shm_ros producer/consumer over Cyclone DDS, without ROS 2.')
    roles = parser.add_subparsers(dest='role', required=True, metavar='producer|consumer')
    for role, (_, options, description) in ROLES.items():
        sub = roles.add_parser(role, help=description, description=description)
        add_options(sub, options)
        sub.add_argument('--namespace', default='/',
                         help='node namespace for relative topics and the default shm_name')
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one peer until it is finished or interrupted; always unlink and unmap."""
    args = vars(build_parser().parse_args(argv))
    make = ROLES[args.pop('role')][0]
    namespace = args.pop('namespace')
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='[%(levelname)s] [%(created).6f] [%(name)s]: %(message)s')
    return run_guarded(lambda: make(args, namespace), lambda peer: peer.run(),
                       lambda peer, interrupted: peer.shutdown(interrupted))


if __name__ == '__main__':
    sys.exit(main())
