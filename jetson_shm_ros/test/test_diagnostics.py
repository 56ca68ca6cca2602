"""/diagnostics: what each ShmPublisher and ShmSubscription reports, read off the real topic."""

import os

from api_fixtures import spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.ros.middleware import descriptor_qos
from jetson_shm_ros_interfaces.msg import DataDescriptor
import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

PERIOD_S = 0.2


class Monitor:
    """Keeps the latest status per name, as rqt_robot_monitor does."""

    def __init__(self, node: Node):
        self.latest = {}
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_array, 50)

    def _on_array(self, array: DiagnosticArray) -> None:
        for status in array.status:
            self.latest[status.name] = status

    def find(self, kind: str):
        return next((status for name, status in self.latest.items() if kind in name), None)


def _values(status: DiagnosticStatus) -> dict:
    return {item.key: item.value for item in status.values}


def test_publisher_and_subscription_report_their_state(context, shm_name):
    node = Node('jsr_test_diag', context=context)
    listener = Node('jsr_test_monitor', context=context)
    monitor = Monitor(listener)
    pub = ShmPublisher(node, 'frames', dtype='uint8', shape=[32, 32], shm_name=shm_name,
                       diagnostics_period_s=PERIOD_S)
    sub = ShmSubscription(node, 'frames', lambda frame, info: None,
                          diagnostics_period_s=PERIOD_S)
    # With the descriptor topic's QoS (transient-local): a volatile publisher does not match.
    hostile = node.create_publisher(DataDescriptor, 'frames', descriptor_qos(10))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        assert spin_until(executor, lambda: pub.subscription_count() >= 1)
        for count in range(1, 11):
            pub.publish(np.zeros((32, 32), np.uint8))
            assert spin_until(executor, lambda: sub.counts['verified'] == count)

        def reported(kind, key, value):
            status = monitor.find(kind)
            return status is not None and _values(status).get(key) == value

        assert spin_until(executor, lambda: reported('shm publisher', 'frames', '10'))
        assert spin_until(executor, lambda: reported('shm subscription', 'verified', '10'))
        published = _values(monitor.find('shm publisher'))
        assert published['segment'] == shm_name and published['backend'] == 'cpu'
        assert published['topic'] == '/frames' and published['mode'] == 'zero_copy'
        assert {'frame_rate_hz', 'latency_p50_ms', 'latency_p99_ms', 'pointer_source',
                'no_free_slot'} <= published.keys()
        # The publisher's latency is measured (commit -> RMW hand-over), not the stamp's age
        # at publish time, which is 0 whenever the publisher stamps the frame itself.
        assert float(published['latency_p50_ms']) > 0, published
        assert float(published['latency_p99_ms']) >= float(published['latency_p50_ms'])
        received = _values(monitor.find('shm subscription'))
        assert received['segment'] == shm_name and received['invalid'] == '0'
        assert monitor.find('shm subscription').hardware_id == shm_name
        assert monitor.find('shm publisher').hardware_id == shm_name
        assert received['in_place_bytes'] == str(10 * 32 * 32)
        assert {'dropped', 'copied_bytes', 'frame_rate_hz', 'latency_p50_ms'} <= received.keys()
        # A hostile descriptor: the next report of the subscription is an ERROR naming why.
        hostile.publish(DataDescriptor(shm_name='/../etc', sequence=2, dtype='|u1', shape=[1],
                                       nbytes=1))
        assert spin_until(executor, lambda: reported('shm subscription', 'invalid.bad_name', '1'))
        assert monitor.find('shm subscription').level == DiagnosticStatus.ERROR
        assert 'invalid' in monitor.find('shm subscription').message
        assert monitor.find('shm publisher').level == DiagnosticStatus.OK
    finally:
        executor.shutdown()
        node.destroy_node()
        listener.destroy_node()
    assert not os.path.exists('/dev/shm' + shm_name)


def test_a_zero_period_turns_diagnostics_off(context, shm_name):
    node = Node('jsr_test_quiet', context=context)
    try:
        pub = ShmPublisher(node, 'frames', dtype='uint8', shape=[4], shm_name=shm_name,
                           diagnostics_period_s=0.0)
        ShmSubscription(node, 'frames', lambda frame, info: None, diagnostics_period_s=0.0)
        assert pub.diagnostic_status() is None
        assert node.count_publishers('/diagnostics') == 0
    finally:
        node.destroy_node()
