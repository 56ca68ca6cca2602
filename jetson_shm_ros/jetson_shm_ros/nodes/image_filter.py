"""
The image_filter node: a pipeline stage from frames to DNN input tensors, without a copy.

It subscribes to rgb8/bgr8 frames (ShmSubscription), turns each into a normalized float32 CHW
tensor with one kernel that writes straight into a slot of its own segment (ShmPublisher.loan),
and publishes that: camera -> image_filter -> model, every stage reading in place.
"""

from jetson_shm_ros.core.backend import BACKENDS, MODES
from jetson_shm_ros.core.errors import NoFreeSlot
from jetson_shm_ros.core.preprocess import (
    chw_shape, coefficients, IMAGENET_MEAN, IMAGENET_STD, INPUT_ENCODINGS, normalize_to_chw)
from jetson_shm_ros.core.segment import POLICIES
from jetson_shm_ros.nodes.ros_common import run_node, startup_parameter
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.publisher import ShmPublisher
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
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
        self._declare_parameters()
        param = self._param
        self._output_rgb = param('output_order') == 'rgb'
        self._scale, self._offset = coefficients(param('mean'), param('std'))
        self._device_coefficients = None
        self.shm_subscription = ShmSubscription(
            self, param('input_topic'), self._on_frame, backend=param('backend'),
            mode=param('mode'), queue_depth=param('queue_depth'),
            diagnostics_period_s=param('diagnostics_period_s'))
        self.get_logger().info(
            f'image_filter: {param("input_topic")} (rgb8|bgr8, HWC) -> {param("output_topic")} '
            f'(float32 CHW, {param("output_order")}) mean={list(param("mean"))} '
            f'std={list(param("std"))}')

    def _declare_parameters(self) -> None:
        self.declare_parameter('input_topic', 'camera/frames', startup_parameter(
            'Descriptor topic of the input frames (rgb8 or bgr8, shape [h, w, 3])'))
        self.declare_parameter('output_topic', 'camera/tensor', startup_parameter(
            'Descriptor topic of the output tensors (float32, shape [3, h, w])'))
        self.declare_parameter('shm_name', '', startup_parameter(
            'Segment of the output tensors; empty: derived from the node name and topic'))
        self.declare_parameter('output_order', 'rgb', startup_parameter(
            'Channel order of the output tensor: rgb or bgr (inputs are reordered as needed)'))
        self.declare_parameter('mean', list(IMAGENET_MEAN), startup_parameter(
            'Per-channel mean subtracted after scaling to [0, 1], output channel order'))
        self.declare_parameter('std', list(IMAGENET_STD), startup_parameter(
            'Per-channel standard deviation divided by, output channel order'))
        self.declare_parameter('slots', 4, startup_parameter(
            'Slots of the output segment', integer_range=[
                IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('policy', 'latest', startup_parameter(
            f'Output policy, one of {list(POLICIES)}'))
        self.declare_parameter('wait_for_consumers', 0, startup_parameter(
            'Reliable output: consumers to wait for before reusing a slot', integer_range=[
                IntegerRange(from_value=0, to_value=16, step=1)]))
        self.declare_parameter('backend', 'auto', startup_parameter(f'One of {list(BACKENDS)}'))
        self.declare_parameter('mode', 'zero_copy', startup_parameter(f'One of {list(MODES)}'))
        self.declare_parameter('queue_depth', 16, startup_parameter(
            'Input descriptor queue depth', integer_range=[
                IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('diagnostics_period_s', 1.0, startup_parameter(
            'Seconds between /diagnostics reports; 0 = off', floating_point_range=[
                FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)]))

    def _param(self, name: str):
        return self.get_parameter(name).value

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
            with publisher.loan(stamp_ns=info.stamp_ns, frame_id=info.frame_id) as tensor:
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
        if self.shm_publisher is not None:
            # A new input size: a new segment (incarnation) for the new tensor size.
            self.get_logger().info(f'input size changed to {list(image_shape)}: new segment')
            self.shm_publisher.close()
        self.shm_publisher = ShmPublisher(
            self, self._param('output_topic'), dtype='float32', shape=shape,
            slots=self._param('slots'), policy=self._param('policy'),
            backend=self.shm_subscription.backend.name, mode=self._param('mode'),
            shm_name=self._param('shm_name'),
            required_readers=self._param('wait_for_consumers'),
            diagnostics_period_s=self._param('diagnostics_period_s'))
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
