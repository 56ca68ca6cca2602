"""
The options of each role: producer, consumer, image_filter, the bridges (see process.options).

Options that several roles share are written once here and reused, with their own
description where the meaning shifts (e.g. `frames` to send vs to handle).
"""

from dataclasses import replace
from typing import Tuple

from jetson_shm_ros.core.backend import BACKENDS, MODES
from jetson_shm_ros.core.image_encodings import encoding_layout
from jetson_shm_ros.core.payload import MAX_DIMS, normalize_dtype
from jetson_shm_ros.core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from jetson_shm_ros.core.segment import MAX_READERS, MAX_SLOTS, POLICIES
from jetson_shm_ros.process.options import Option

DEFAULT_TOPIC = 'jetson_shm/descriptors'


def _check_dtype(value: str) -> None:
    normalize_dtype(value)


def _check_encoding(value: str) -> None:
    if value:  # empty: a plain tensor
        encoding_layout(value)


def _three(values) -> None:
    if len(values) != 3:
        raise ValueError(f'need one value per channel (3), got {len(values)}')


_POSITIVE_S = {'minimum': 0.001, 'maximum': 100000.0}

TOPIC = Option('topic', str, DEFAULT_TOPIC,
               'Descriptor topic (relative names follow the node namespace; remapping works too)')
SHM_NAME = Option('shm_name', str, '', 'POSIX shared-memory name, e.g. /jetson_shm_ros.camera; '
                  'empty: derived from the node name')
SLOTS = Option('slots', int, 4, 'Slots in the segment = frames in flight',
               minimum=1, maximum=MAX_SLOTS)
FRAMES = Option('frames', int, 0, 'Frames to send before exiting; 0 = endless',
                minimum=0, maximum=2**62)
POLICY = Option('policy', str, 'latest', 'latest: never block, slow consumers drop frames; '
                'reliable: reuse a slot only after every consumer released it',
                choices=tuple(POLICIES))
WAIT_FOR_CONSUMERS = Option(
    'wait_for_consumers', int, 0, 'Do not publish before this many subscriptions matched; '
    'reliable policy: also wait for this many consumers before reusing a slot',
    minimum=0, maximum=MAX_READERS)
QUEUE_DEPTH = Option('queue_depth', int, 16,
                     "Descriptor queue depth; keep it at least the producer's slot count",
                     minimum=1, maximum=MAX_SLOTS)
BACKEND = Option('backend', str, 'auto', 'Where frames live and are computed on',
                 choices=BACKENDS)
MODE = Option('mode', str, 'zero_copy',
              'zero_copy: compute on the mapped slot; copy: copy it to device memory first',
              choices=MODES)
STATUS_PERIOD_S = Option('status_period_s', float, 5.0, 'Seconds between status log lines',
                         **_POSITIVE_S)

PRODUCER_OPTIONS: Tuple[Option, ...] = (
    TOPIC,
    SHM_NAME,
    SLOTS,
    Option('dtype', str, 'uint8', 'Element type, e.g. uint8, uint16, float32',
           check=_check_dtype),
    Option('shape', list, [1080, 1920, 3], 'Frame shape in elements, e.g. [480,640,3]',
           item_type=int, minimum=1, max_items=MAX_DIMS),
    Option('rate_hz', float, 30.0, 'Frames per second', **_POSITIVE_S),
    FRAMES,
    POLICY,
    Option('checksum', bool, True,
           'Publish the payload checksum so consumers can verify every byte'),
    BACKEND,
    MODE,
    WAIT_FOR_CONSUMERS,
    Option('release_timeout_s', float, 1.0, 'Reliable policy: longest wait for a consumer to '
           'release a slot before it is evicted (logged)', **_POSITIVE_S),
    Option('encoding', str, '', 'ROS image encoding of the frames (rgb8, mono16, 32FC1, ...) '
           'or empty for a plain tensor; must agree with dtype and shape',
           check=_check_encoding),
    Option('frame_id', str, '', 'header.frame_id of every descriptor'),
    STATUS_PERIOD_S,
)

CONSUMER_OPTIONS: Tuple[Option, ...] = (
    TOPIC,
    replace(FRAMES, description='Descriptors to handle before exiting; 0 = endless'),
    Option('idle_timeout_s', float, 0.0, 'Exit when no descriptor arrived for this long '
           'after the first one; 0 = never', minimum=0.0, maximum=100000.0),
    QUEUE_DEPTH,
    BACKEND,
    MODE,
    Option('allow_group_access', bool, False,
           "Accept segments that the owner's group may write (default: owner only)"),
    Option('verify', bool, True,
           'Check each payload checksum (when the producer sends one) before accepting it'),
    STATUS_PERIOD_S,
)

# What only the rclpy nodes have (the Cyclone DDS peers publish no /diagnostics).
ROS_NODE_OPTIONS: Tuple[Option, ...] = (
    Option('diagnostics_period_s', float, 1.0, 'Seconds between /diagnostics reports; 0 = off',
           minimum=0.0, maximum=3600.0),
)
PRODUCER_NODE_OPTIONS = PRODUCER_OPTIONS + ROS_NODE_OPTIONS
CONSUMER_NODE_OPTIONS = CONSUMER_OPTIONS + ROS_NODE_OPTIONS

# The image_filter stage (an rclpy node only): rgb8/bgr8 in, normalized float32 CHW out.
IMAGE_FILTER_NODE_OPTIONS: Tuple[Option, ...] = (
    Option('input_topic', str, 'camera/frames',
           'Descriptor topic of the input frames (rgb8 or bgr8, shape [h, w, 3])'),
    Option('output_topic', str, 'camera/tensor',
           'Descriptor topic of the output tensors (float32, shape [3, h, w])'),
    replace(SHM_NAME, description='Segment of the output tensors; empty: derived from the node '
            'name and topic'),
    Option('output_order', str, 'rgb', 'Channel order of the output tensor (inputs are '
           'reordered as needed)', choices=('rgb', 'bgr')),
    Option('mean', list, list(IMAGENET_MEAN), 'Per-channel mean subtracted after scaling to '
           '[0, 1], output channel order', item_type=float, check=_three),
    Option('std', list, list(IMAGENET_STD), 'Per-channel standard deviation divided by, '
           'output channel order', item_type=float, minimum=1e-9, check=_three),
    replace(SLOTS, description='Slots of the output segment'),
    replace(POLICY, description='Policy of the output segment: ' + POLICY.description),
    replace(WAIT_FOR_CONSUMERS, description='Subscriptions a new output segment waits for (up '
            'to output_wait_s) before its first tensor; reliable output: also consumers to wait '
            'for before reusing a slot'),
    Option('output_wait_s', float, 2.0, 'Reliable output: longest wait for a free output slot '
           'before a frame is skipped; the wait holds the input slot, so back-pressure reaches '
           'a reliable producer instead of frames being lost', minimum=0.0, maximum=3600.0),
    BACKEND,
    MODE,
    replace(QUEUE_DEPTH, description='Input descriptor queue depth'),
) + ROS_NODE_OPTIONS

# The image bridges (rclpy nodes only): sensor_msgs/Image in (image_to_shm) and out
# (shm_to_image). Their Image topics are fixed names to remap: image_raw and image.
IMAGE_TO_SHM_NODE_OPTIONS: Tuple[Option, ...] = (
    replace(TOPIC, description='Descriptor topic (the Image input is the topic image_raw: '
            'remap it)'),
    replace(SHM_NAME, description='Segment name; made at the first image and re-made when the '
            'size or encoding changes; empty: derived from the node name and topic'),
    replace(SLOTS, description='Slots in the segment = images in flight'),
    replace(POLICY, description='latest: never wait for consumers (a camera cannot); reliable: '
            'reuse a slot only after every consumer released it, else skip the image (counted)'),
    BACKEND,
    MODE,
    Option('checksum', bool, True,
           'Publish the payload checksum so consumers can verify every byte'),
    Option('image_queue_depth', int, 5, 'Depth of the Image subscription (keep last)',
           minimum=1, maximum=1000),
    STATUS_PERIOD_S,
) + ROS_NODE_OPTIONS

SHM_TO_IMAGE_NODE_OPTIONS: Tuple[Option, ...] = (
    replace(TOPIC, description='Descriptor topic (the Image output is the topic image: remap it)'),
    Option('encoding', str, '', 'Image encoding for frames whose descriptor has none (plain '
           'tensors), e.g. mono8; empty: such frames are refused', check=_check_encoding),
    Option('max_rate_hz', float, 30.0, 'Most images per second; frames beyond it are skipped, '
           'never queued; 0 = every frame', minimum=0.0, maximum=100000.0),
    replace(BACKEND, description='Where frames are mapped; an Image is host memory, so frames '
            'on the GPU are copied to the host once'),
    Option('verify', bool, True,
           'Check each frame against its checksum; a torn or corrupt frame is never published'),
    replace(QUEUE_DEPTH, description='Descriptor queue depth'),
    Option('image_queue_depth', int, 2, 'Depth of the Image publisher (keep last)',
           minimum=1, maximum=1000),
    STATUS_PERIOD_S,
) + ROS_NODE_OPTIONS

# shm_recorder / shm_player (rclpy nodes only): frames to and from a rosbag2 MCAP bag.
_BYTES = {'minimum': 0, 'maximum': 2**62}
RECORDER_NODE_OPTIONS: Tuple[Option, ...] = (
    Option('topics', list, [DEFAULT_TOPIC], 'Descriptor topics to record, e.g. '
           '[camera/frames,camera/depth]', item_type=str, max_items=64),
    Option('output', str, '', 'Bag directory to create (must not exist); empty: '
           'shm_bag_<date>_<time> in the working directory'),
    Option('compression', str, 'none', 'MCAP chunk compression: none keeps up with the disk; '
           'zstd saves space at the cost of CPU', choices=('none', 'zstd')),
    Option('max_frames', int, 0, 'Frames to record (all topics together) before exiting; '
           '0 = until stopped', **_BYTES),
    Option('max_bytes', int, 0, 'Stop before the bag grows past this many bytes; 0 = no limit',
           **_BYTES),
    Option('split_bytes', int, 0, 'Start a new .mcap file of the bag past this many bytes; '
           '0 = one file', **_BYTES),
    Option('chunk_bytes', int, 4 * 2**20, 'Bytes of frames per MCAP chunk: the unit written at '
           'once, and the most a failing disk can lose', minimum=2**16, maximum=2**31),
    Option('chunk_crc', bool, False, 'Write a CRC32 of every MCAP chunk so readers detect '
           'corrupted bytes; costs about as much CPU as the rest of recording together'),
    Option('queue_bytes', int, 512 * 2**20, 'Most bytes of frames waiting for the disk; past '
           'it frames are refused (counted as queue_full) instead of memory growing',
           minimum=2**20, maximum=2**40),
    replace(BACKEND, description='Where frames are mapped; a bag is host memory, so frames on '
            'the GPU are copied to the host once'),
    Option('verify', bool, True,
           'Record only frames that match their checksum (when the producer sends one)'),
    replace(QUEUE_DEPTH, description='Descriptor queue depth of each subscription'),
    STATUS_PERIOD_S,
) + ROS_NODE_OPTIONS

PLAYER_NODE_OPTIONS: Tuple[Option, ...] = (
    Option('bag', str, '', 'Bag to replay: a rosbag2 directory (metadata.yaml + .mcap) or an '
           '.mcap file; required'),
    Option('topics', list, ['*'], "Recorded topics to replay; ['*'] = every topic",
           item_type=str, max_items=64),
    Option('topic_prefix', str, '', 'Put before each recorded topic name when publishing, '
           'e.g. /replay; empty: the recorded names'),
    Option('rate', float, 1.0, 'Replay speed: 1 = as recorded, 2 = twice as fast; 0 = as fast '
           'as the readers allow', minimum=0.0, maximum=1000.0),
    Option('loop', bool, False, 'Start again at the end of the bag'),
    Option('start_offset_s', float, 0.0, 'Skip this many seconds at the start of the bag',
           minimum=0.0, maximum=1e9),
    replace(SLOTS, description="Slots of each replayed topic's segment"),
    replace(POLICY, description='Policy of the replayed segments: ' + POLICY.description),
    replace(WAIT_FOR_CONSUMERS, description='Do not publish a topic before this many '
            'subscriptions matched it; reliable policy: also consumers to wait for before '
            'reusing a slot'),
    Option('release_timeout_s', float, 1.0, 'Reliable policy: longest wait for a free slot '
           '(and for a reader before it is evicted)', **_POSITIVE_S),
    BACKEND,
    Option('checksum', bool, True,
           'Publish the payload checksum so consumers can verify every byte'),
    STATUS_PERIOD_S,
) + ROS_NODE_OPTIONS
