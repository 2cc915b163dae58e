from mesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CodecMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODEC_MODE_UNSPECIFIED: _ClassVar[CodecMode]
    CODEC_MODE_CRF: _ClassVar[CodecMode]
    CODEC_MODE_VBR: _ClassVar[CodecMode]
    CODEC_MODE_CBR: _ClassVar[CodecMode]
CODEC_MODE_UNSPECIFIED: CodecMode
CODEC_MODE_CRF: CodecMode
CODEC_MODE_VBR: CodecMode
CODEC_MODE_CBR: CodecMode

class CompressRequest(_message.Message):
    __slots__ = ("source_url", "vmaf_threshold", "target_codec", "codec_mode", "target_bitrate_mbps", "job_id", "batch", "priority", "operator_seed")
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    VMAF_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TARGET_CODEC_FIELD_NUMBER: _ClassVar[int]
    CODEC_MODE_FIELD_NUMBER: _ClassVar[int]
    TARGET_BITRATE_MBPS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_SEED_FIELD_NUMBER: _ClassVar[int]
    source_url: str
    vmaf_threshold: float
    target_codec: _common_pb2.VideoCodec
    codec_mode: CodecMode
    target_bitrate_mbps: float
    job_id: str
    batch: _common_pb2.Batch
    priority: _common_pb2.JobPriority
    operator_seed: str
    def __init__(self, source_url: _Optional[str] = ..., vmaf_threshold: _Optional[float] = ..., target_codec: _Optional[_Union[_common_pb2.VideoCodec, str]] = ..., codec_mode: _Optional[_Union[CodecMode, str]] = ..., target_bitrate_mbps: _Optional[float] = ..., job_id: _Optional[str] = ..., batch: _Optional[_Union[_common_pb2.Batch, _Mapping]] = ..., priority: _Optional[_Union[_common_pb2.JobPriority, str]] = ..., operator_seed: _Optional[str] = ...) -> None: ...

class CompressResult(_message.Message):
    __slots__ = ("output", "media", "source", "timings", "vmaf", "vmaf_neg", "compression_ratio", "predicted_score", "meets_threshold", "encoder", "scene_count", "note", "gates")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    VMAF_FIELD_NUMBER: _ClassVar[int]
    VMAF_NEG_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    MEETS_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    SCENE_COUNT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    output: _common_pb2.StoredObject
    media: _common_pb2.MediaInfo
    source: _common_pb2.MediaInfo
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    vmaf: float
    vmaf_neg: float
    compression_ratio: float
    predicted_score: float
    meets_threshold: bool
    encoder: str
    scene_count: int
    note: str
    gates: _containers.RepeatedCompositeFieldContainer[_common_pb2.GateCheck]
    def __init__(self, output: _Optional[_Union[_common_pb2.StoredObject, _Mapping]] = ..., media: _Optional[_Union[_common_pb2.MediaInfo, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.MediaInfo, _Mapping]] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., vmaf: _Optional[float] = ..., vmaf_neg: _Optional[float] = ..., compression_ratio: _Optional[float] = ..., predicted_score: _Optional[float] = ..., meets_threshold: _Optional[bool] = ..., encoder: _Optional[str] = ..., scene_count: _Optional[int] = ..., note: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[_common_pb2.GateCheck, _Mapping]]] = ...) -> None: ...

class CompressEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: CompressResult
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[CompressResult, _Mapping]] = ...) -> None: ...
