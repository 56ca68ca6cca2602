"""
The image_filter node: a pipeline stage from frames to DNN input tensors, without a copy.

It subscribes to rgb8/bgr8 frames (ShmSubscription), turns each into a normalized float32 CHW
tensor with one kernel that writes straight into a slot of its own segment (ShmPublisher.loan),
and publishes that: camera -> image_filter -> model, every stage reading in place.
"""

from jetson_shm_ros.core.errors import NoFreeSlot
from jetson_shm_ros.core.preprocess import (
    chw_shape, coefficients, INPUT_ENCODINGS, normalize_to_chw)
from jetson_shm_ros.nodes.ros_common import run_node
from jetson_shm_ros.process.role_options import IMAGE_FILTER_NODE_OPTIONS
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.publisher import ShmPublisher
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
from rclpy.node import Node


class ImageFilterNode(Node):
    """Normalizes each rgb8/bgr8 frame into a float32 CHW tensor in its own segment."""

    def __init__(self, **kwargs):
        super().__init__('image_filter', **kwargs)
        self.finished = False
        self.exit_code = 0
        self.shm_publisher = None
        self.shm_subscription = None
        self.counters = {'filtered': 0, 'unsupported': 0, 'no_free_slot': 0}
        self._options = options = declare_options(self, IMAGE_FILTER_NODE_OPTIONS)
        self._output_rgb = options['output_order'] == 'rgb'
        self._scale, self._offset = coefficients(options['mean'], options['std'])
        self._device_coefficients = None
        # Reliable output waits (back-pressure); latest never does.
        self._output_wait_s = options['output_wait_s'] if options['policy'] == 'reliable' else 0.0
        self.shm_subscription = ShmSubscription(
            self, options['input_topic'], self._on_frame, backend=options['backend'],
            mode=options['mode'], queue_depth=options['queue_depth'],
            diagnostics_period_s=options['diagnostics_period_s'])
        self.get_logger().info(
            f'image_filter: {options["input_topic"]} (rgb8|bgr8, HWC) -> '
            f'{options["output_topic"]} (float32 CHW, {options["output_order"]}) '
            f'mean={options["mean"]} std={options["std"]}')

    def _on_frame(self, frame, info: FrameInfo) -> None:
        if info.encoding not in INPUT_ENCODINGS or info.dtype != '|u1' or len(info.shape) != 3:
            self.counters['unsupported'] += 1
            if self.counters['unsupported'] in (1, 100, 10000):
                self.get_logger().error(
                    f'cannot filter {info.encoding or "a tensor"} {info.dtype}{list(info.shape)}'
                    f' from {info.shm_name}: need rgb8 or bgr8 [h, w, 3] (seen '
                    f'{self.counters["unsupported"]} times)')
            return
        publisher = self._publisher_for(info.shape)
        swap = (info.encoding == 'rgb8') != self._output_rgb
        scale, offset = self._coefficients_for(frame)
        try:
            with publisher.loan(stamp_ns=info.stamp_ns, frame_id=info.frame_id,
                                timeout_s=self._output_wait_s) as tensor:
                normalize_to_chw(frame, tensor, scale, offset, swap)
        except NoFreeSlot:
            self.counters['no_free_slot'] += 1
            return
        self.counters['filtered'] += 1

    def _coefficients_for(self, frame):
        if isinstance(frame, np.ndarray):
            return self._scale, self._offset
        if self._device_coefficients is None:
            import cupy
            self._device_coefficients = cupy.asarray(self._scale), cupy.asarray(self._offset)
        return self._device_coefficients

    def _publisher_for(self, image_shape) -> ShmPublisher:
        shape = chw_shape(image_shape)
        if self.shm_publisher is not None and self.shm_publisher.shape == shape:
            return self.shm_publisher
        matched = 0
        if self.shm_publisher is not None:
            # A new input size: a new segment (incarnation) for the new tensor size.
            self.get_logger().info(f'input size changed to {list(image_shape)}: new segment')
            matched = self.shm_publisher.subscription_count()
            self.shm_publisher.close()
        options = self._options
        self.shm_publisher = ShmPublisher(
            self, options['output_topic'], dtype='float32', shape=shape,
            slots=options['slots'], policy=options['policy'],
            backend=self.shm_subscription.backend.name, mode=options['mode'],
            shm_name=options['shm_name'], required_readers=options['wait_for_consumers'],
            diagnostics_period_s=options['diagnostics_period_s'])
        # Its first tensors must not go out before the subscribers matched the new publisher.
        self.shm_publisher.wait_for_subscriptions(
            max(matched, self._options['wait_for_consumers']), self._output_wait_s)
        return self.shm_publisher

    def shutdown(self) -> None:
        """Log what was done, then unmap the input and unlink the output segment."""
        self.get_logger().info(
            'done: ' + ' '.join(f'{key}={value}' for key, value in self.counters.items()) +
            (f' input: {self.shm_subscription.summary()}' if self.shm_subscription else ''))
        for endpoint in (self.shm_subscription, self.shm_publisher):
            if endpoint is not None:
                endpoint.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros image_filter`."""
    raise SystemExit(run_node(ImageFilterNode, args))


if __name__ == '__main__':
    main()
