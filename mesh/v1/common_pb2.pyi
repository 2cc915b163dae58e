import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_CODEC_UNSPECIFIED: _ClassVar[VideoCodec]
    VIDEO_CODEC_AV1: _ClassVar[VideoCodec]
    VIDEO_CODEC_HEVC: _ClassVar[VideoCodec]
    VIDEO_CODEC_H264: _ClassVar[VideoCodec]
    VIDEO_CODEC_VP9: _ClassVar[VideoCodec]

class JobPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PRIORITY_UNSPECIFIED: _ClassVar[JobPriority]
    JOB_PRIORITY_SYNTHETIC: _ClassVar[JobPriority]
    JOB_PRIORITY_ORGANIC: _ClassVar[JobPriority]
VIDEO_CODEC_UNSPECIFIED: VideoCodec
VIDEO_CODEC_AV1: VideoCodec
VIDEO_CODEC_HEVC: VideoCodec
VIDEO_CODEC_H264: VideoCodec
VIDEO_CODEC_VP9: VideoCodec
JOB_PRIORITY_UNSPECIFIED: JobPriority
JOB_PRIORITY_SYNTHETIC: JobPriority
JOB_PRIORITY_ORGANIC: JobPriority

class Progress(_message.Message):
    __slots__ = ("stage", "done", "total", "unit", "rate", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    unit: str
    rate: float
    message: str
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ..., rate: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class MediaInfo(_message.Message):
    __slots__ = ("width", "height", "fps_num", "fps_den", "frame_count", "duration_seconds", "codec", "profile", "pix_fmt", "container", "size_bytes", "bit_rate", "color_space", "color_transfer", "color_primaries", "sample_aspect_ratio")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_NUM_FIELD_NUMBER: _ClassVar[int]
    FPS_DEN_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    PIX_FMT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    BIT_RATE_FIELD_NUMBER: _ClassVar[int]
    COLOR_SPACE_FIELD_NUMBER: _ClassVar[int]
    COLOR_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    COLOR_PRIMARIES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ASPECT_RATIO_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    duration_seconds: float
    codec: str
    profile: str
    pix_fmt: str
    container: str
    size_bytes: int
    bit_rate: int
    color_space: str
    color_transfer: str
    color_primaries: str
    sample_aspect_ratio: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., fps_num: _Optional[int] = ..., fps_den: _Optional[int] = ..., frame_count: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., codec: _Optional[str] = ..., profile: _Optional[str] = ..., pix_fmt: _Optional[str] = ..., container: _Optional[str] = ..., size_bytes: _Optional[int] = ..., bit_rate: _Optional[int] = ..., color_space: _Optional[str] = ..., color_transfer: _Optional[str] = ..., color_primaries: _Optional[str] = ..., sample_aspect_ratio: _Optional[str] = ...) -> None: ...

class StoredObject(_message.Message):
    __slots__ = ("bucket", "object_key", "presigned_url", "url_expires_at", "delete_at")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    PRESIGNED_URL_FIELD_NUMBER: _ClassVar[int]
    URL_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DELETE_AT_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    object_key: str
    presigned_url: str
    url_expires_at: _timestamp_pb2.Timestamp
    delete_at: _timestamp_pb2.Timestamp
    def __init__(self, bucket: _Optional[str] = ..., object_key: _Optional[str] = ..., presigned_url: _Optional[str] = ..., url_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "duration")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    stage: str
    duration: _duration_pb2.Duration
    def __init__(self, stage: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GateCheck(_message.Message):
    __slots__ = ("name", "passed", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    passed: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("id", "size", "index", "weights")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    size: int
    index: int
    weights: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., size: _Optional[int] = ..., index: _Optional[int] = ..., weights: _Optional[_Iterable[float]] = ...) -> None: ...
