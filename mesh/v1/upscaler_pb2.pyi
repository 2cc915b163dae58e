from mesh.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpscaleTaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPSCALE_TASK_TYPE_UNSPECIFIED: _ClassVar[UpscaleTaskType]
    UPSCALE_TASK_TYPE_SD2HD: _ClassVar[UpscaleTaskType]
    UPSCALE_TASK_TYPE_HD24K: _ClassVar[UpscaleTaskType]
    UPSCALE_TASK_TYPE_SD24K: _ClassVar[UpscaleTaskType]
    UPSCALE_TASK_TYPE_4K28K: _ClassVar[UpscaleTaskType]
UPSCALE_TASK_TYPE_UNSPECIFIED: UpscaleTaskType
UPSCALE_TASK_TYPE_SD2HD: UpscaleTaskType
UPSCALE_TASK_TYPE_HD24K: UpscaleTaskType
UPSCALE_TASK_TYPE_SD24K: UpscaleTaskType
UPSCALE_TASK_TYPE_4K28K: UpscaleTaskType

class UpscaleRequest(_message.Message):
    __slots__ = ("source_url", "task_type", "scale", "codec", "model", "job_id", "batch", "priority")
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    source_url: str
    task_type: UpscaleTaskType
    scale: int
    codec: _common_pb2.VideoCodec
    model: str
    job_id: str
    batch: _common_pb2.Batch
    priority: _common_pb2.JobPriority
    def __init__(self, source_url: _Optional[str] = ..., task_type: _Optional[_Union[UpscaleTaskType, str]] = ..., scale: _Optional[int] = ..., codec: _Optional[_Union[_common_pb2.VideoCodec, str]] = ..., model: _Optional[str] = ..., job_id: _Optional[str] = ..., batch: _Optional[_Union[_common_pb2.Batch, _Mapping]] = ..., priority: _Optional[_Union[_common_pb2.JobPriority, str]] = ...) -> None: ...

class UpscaleResult(_message.Message):
    __slots__ = ("output", "media", "source", "timings", "model", "engine", "gates")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    output: _common_pb2.StoredObject
    media: _common_pb2.MediaInfo
    source: _common_pb2.MediaInfo
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    model: str
    engine: str
    gates: _containers.RepeatedCompositeFieldContainer[_common_pb2.GateCheck]
    def __init__(self, output: _Optional[_Union[_common_pb2.StoredObject, _Mapping]] = ..., media: _Optional[_Union[_common_pb2.MediaInfo, _Mapping]] = ..., source: _Optional[_Union[_common_pb2.MediaInfo, _Mapping]] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., model: _Optional[str] = ..., engine: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[_common_pb2.GateCheck, _Mapping]]] = ...) -> None: ...

class UpscaleEvent(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: _common_pb2.Progress
    result: UpscaleResult
    def __init__(self, progress: _Optional[_Union[_common_pb2.Progress, _Mapping]] = ..., result: _Optional[_Union[UpscaleResult, _Mapping]] = ...) -> None: ...
