#!/usr/bin/env python3
"""
A stand-in camera for scripts/gpu_bridges.sh: publishes sensor_msgs/Image, checks what returns.

Publishes `--frames` images (random bytes, padded rows) on `--image-topic` at `--rate-hz` once
image_to_shm subscribed, and listens on `--viewer-topic` to what shm_to_image sends back: each
returned image must equal the one sent with its frame_id, byte for byte after unpadding, with
the same stamp. Prints one line, `camera: sent=N viewer_received=M viewer_equal=M ...`, and
exits non-zero unless at least one image came back and every one was equal.
"""

import argparse
import array
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

MATCH_TIMEOUT_S = 60.0
DRAIN_S = 3.0
CHANNELS = {'mono8': 1, 'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4}


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--rate-hz', type=float, default=30.0)
    parser.add_argument('--encoding', default='rgb8', choices=sorted(CHANNELS))
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--padding', type=int, default=64, help='bytes of padding per row')
    parser.add_argument('--image-topic', default='/camera/image_raw')
    parser.add_argument('--viewer-topic', default='/camera/image_shm')
    return parser.parse_args()


def _image(args, index: int) -> Image:
    row = args.width * CHANNELS[args.encoding]
    step = row + args.padding
    data = np.random.default_rng(index).integers(0, 256, step * args.height, dtype=np.uint8)
    msg = Image(encoding=args.encoding, height=args.height, width=args.width, step=step,
                is_bigendian=0, data=array.array('B', data.tobytes()))
    msg.header.frame_id = f'camera/{index}'
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
    return msg


def _unpadded(msg: Image, row: int) -> bytes:
    data = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    return data[:, :row].tobytes()


def main() -> int:
    """Publish, wait for the bridge's images to come back, compare, print one line."""
    args = _arguments()
    rclpy.init()
    node = rclpy.create_node('bridge_camera')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    publisher = node.create_publisher(Image, args.image_topic, qos)
    sent, returned = {}, []
    node.create_subscription(Image, args.viewer_topic, returned.append, qos)
    try:
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if publisher.get_subscription_count() == 0:
            print(f'camera: nobody subscribed to {args.image_topic} in {MATCH_TIMEOUT_S} s')
            return 1
        start = time.monotonic()
        for index in range(args.frames):
            due = start + index / args.rate_hz
            while time.monotonic() < due:
                rclpy.spin_once(node, timeout_sec=max(0.0, due - time.monotonic()))
            msg = _image(args, index)
            publisher.publish(msg)
            sent[msg.header.frame_id] = msg
        drain_until = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_until:
            rclpy.spin_once(node, timeout_sec=0.1)
        row = args.width * CHANNELS[args.encoding]
        equal = sum(
            1 for msg in returned if msg.header.frame_id in sent and
            bytes(msg.data) == _unpadded(sent[msg.header.frame_id], row) and
            msg.header.stamp == sent[msg.header.frame_id].header.stamp and
            (msg.encoding, msg.height, msg.width, msg.step) ==
            (args.encoding, args.height, args.width, row))
        print(f'camera: sent={len(sent)} viewer_received={len(returned)} viewer_equal={equal} '
              f'({args.encoding} {args.width}x{args.height}, {args.padding} B row padding, '
              f'{args.rate_hz} Hz)')
        return 0 if returned and equal == len(returned) else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
