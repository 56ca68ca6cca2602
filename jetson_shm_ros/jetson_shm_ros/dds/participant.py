"""
A Cyclone DDS participant that behaves like a ROS 2 process on the same graph.

ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE (or Humble's ROS_LOCALHOST_ONLY) and
ROS_STATIC_PEERS are honored the way rmw_cyclonedds_cpp honors them, and the XTypes
compatibility setting that lets Cyclone match Fast DDS's endpoints is always on.
"""

import os
import re
from typing import Dict, Optional, Tuple
from xml.sax.saxutils import quoteattr

from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.qos import Policy, Qos
from cyclonedds.util import duration

# Cyclone 11 rejects the XTypes type information Fast DDS sends for types with sequences and
# then never matches, silently; 1.15 (eProsima's vendor id) makes it match by type name.
COMPATIBILITY_XML = ('<Compatibility><IgnoreTypeInformation>1.15</IgnoreTypeInformation>'
                     '</Compatibility>')
# Like rmw_cyclonedds_cpp: loopback only, unicast discovery of the local participant ports.
LOCALHOST_XML = ('<General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>'
                 '<AllowMulticast>false</AllowMulticast></General>')
MAX_AUTO_PARTICIPANT_INDEX = 32
_NAME_TOKEN = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def domain_id(env: Optional[Dict[str, str]] = None) -> int:
    """Return ROS_DOMAIN_ID (0 when unset), as rmw does."""
    text = (os.environ if env is None else env).get('ROS_DOMAIN_ID', '').strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > 232:
        raise ValueError(f'ROS_DOMAIN_ID={text!r} is not a domain id (0..232)')
    return int(text)


def discovery_range(env: Optional[Dict[str, str]] = None) -> str:
    """Return 'SUBNET', 'LOCALHOST', 'OFF' or 'SYSTEM_DEFAULT' from the ROS environment."""
    env = os.environ if env is None else env
    text = env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', '').strip().upper()
    if not text and env.get('ROS_LOCALHOST_ONLY', '').strip() == '1':
        return 'LOCALHOST'
    return text if text in ('SUBNET', 'LOCALHOST', 'OFF', 'SYSTEM_DEFAULT') else 'SUBNET'


def cyclone_config(env: Optional[Dict[str, str]] = None) -> str:
    """
    Build the Cyclone configuration for this process.

    :return: a CYCLONEDDS_URI-style list: our XML first, then the user's CYCLONEDDS_URI (so
        its settings win where they overlap)
    """
    env = os.environ if env is None else env
    scope = discovery_range(env)
    peers = [peer.strip() for peer in env.get('ROS_STATIC_PEERS', '').split(';')
             if peer.strip()]
    domain = COMPATIBILITY_XML
    if scope in ('LOCALHOST', 'OFF'):
        domain += LOCALHOST_XML if scope == 'LOCALHOST' else \
            '<General><AllowMulticast>false</AllowMulticast></General>'
        if scope == 'LOCALHOST':
            peers.insert(0, 'localhost')
    if peers:
        domain += (f'<Discovery><ParticipantIndex>auto</ParticipantIndex>'
                   f'<MaxAutoParticipantIndex>{MAX_AUTO_PARTICIPANT_INDEX}'
                   '</MaxAutoParticipantIndex><Peers>' +
                   ''.join(f'<Peer address={quoteattr(peer)}/>' for peer in peers) +
                   '</Peers></Discovery>')
    config = f'<CycloneDDS><Domain>{domain}</Domain></CycloneDDS>'
    user = env.get('CYCLONEDDS_URI', '').strip()
    return f'{config},{user}' if user else config


def resolve_topic(topic: str, namespace: str = '/', node: str = '') -> Tuple[str, str]:
    """
    Expand a ROS topic name and give its DDS topic name.

    :param topic: e.g. 'jetson_shm/descriptors' (relative), '/cam/descriptors', '~/out'
    :param namespace: the node namespace, e.g. '/' or '/robot1'
    :param node: the node name ('~' expands to namespace/node)
    :return: ('/jetson_shm/descriptors', 'rt/jetson_shm/descriptors')
    """
    namespace = '/' + namespace.strip('/') if namespace.strip('/') else '/'
    base = namespace.rstrip('/')
    if topic.startswith('~'):
        if not node:
            raise ValueError(f'topic {topic!r} needs a node name')
        topic = f'{base}/{node}{topic[1:]}'
    elif not topic.startswith('/'):
        topic = f'{base}/{topic}'
    tokens = topic.strip('/').split('/')
    if topic.endswith('/') or not all(_NAME_TOKEN.fullmatch(token) for token in tokens) or \
            '__' in topic:
        raise ValueError(f'{topic!r} is not a valid ROS topic name')
    return topic, 'rt' + topic


def descriptor_qos(depth: int) -> Qos:
    """Return the rclpy nodes' descriptor QoS: reliable, keep-last(depth), transient-local."""
    return Qos(Policy.Reliability.Reliable(duration(milliseconds=100)),
               Policy.History.KeepLast(depth), Policy.Durability.TransientLocal)


def describe_qos(depth: int) -> str:
    """Return the text the rclpy nodes log, e.g. 'reliable, keep_last(4), transient_local'."""
    return f'reliable, keep_last({depth}), transient_local'


def create_participant(env: Optional[Dict[str, str]] = None) -> DomainParticipant:
    """Create the domain (with cyclone_config()) and a participant on ROS_DOMAIN_ID."""
    domain = domain_id(env)
    handle = Domain(domain, cyclone_config(env))
    participant = DomainParticipant(domain)
    participant.jsr_domain = handle  # keep the configured domain alive as long as the participant
    return participant
