"""What a subscription callback is told about the frame it is handed."""

from dataclasses import dataclass
from typing import Tuple

from jetson_shm_ros.core.descriptor import Descriptor
from std_msgs.msg import Header


@dataclass(frozen=True)
class FrameInfo:
    """Metadata of one frame; `header` is the descriptor's std_msgs/Header (stamp, frame_id)."""

    header: Header
    stamp_ns: int
    frame_id: str
    dtype: str
    shape: Tuple[int, ...]
    encoding: str
    sequence: int
    shm_name: str
    slot: int
    nbytes: int
    verified: bool

    @classmethod
    def from_descriptor(cls, desc: Descriptor, header: Header, verified: bool) -> 'FrameInfo':
        """Build the info of a frame that passed validation."""
        return cls(header=header, stamp_ns=desc.stamp_ns, frame_id=desc.frame_id,
                   dtype=desc.dtype, shape=tuple(desc.shape), encoding=desc.encoding,
                   sequence=desc.sequence, shm_name=desc.shm_name, slot=desc.slot,
                   nbytes=desc.nbytes, verified=verified)
