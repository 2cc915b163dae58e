import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScheduleDeletionRequest(_message.Message):
    __slots__ = ("bucket", "object_key", "delay", "delete_at")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    DELETE_AT_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    object_key: str
    delay: _duration_pb2.Duration
    delete_at: _timestamp_pb2.Timestamp
    def __init__(self, bucket: _Optional[str] = ..., object_key: _Optional[str] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., delete_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScheduleDeletionResponse(_message.Message):
    __slots__ = ("delete_at", "replaced")
    DELETE_AT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    delete_at: _timestamp_pb2.Timestamp
    replaced: bool
    def __init__(self, delete_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replaced: _Optional[bool] = ...) -> None: ...

class ScheduleDeletionsRequest(_message.Message):
    __slots__ = ("deletions",)
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    deletions: _containers.RepeatedCompositeFieldContainer[ScheduleDeletionRequest]
    def __init__(self, deletions: _Optional[_Iterable[_Union[ScheduleDeletionRequest, _Mapping]]] = ...) -> None: ...

class ScheduleDeletionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScheduleDeletionResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[ScheduleDeletionResponse, _Mapping]]] = ...) -> None: ...

class CancelDeletionRequest(_message.Message):
    __slots__ = ("bucket", "object_key")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    object_key: str
    def __init__(self, bucket: _Optional[str] = ..., object_key: _Optional[str] = ...) -> None: ...

class CancelDeletionResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class ListPendingRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "dead_letter")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    dead_letter: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., dead_letter: _Optional[bool] = ...) -> None: ...

class PendingDeletion(_message.Message):
    __slots__ = ("bucket", "object_key", "delete_at", "attempts", "last_error")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    DELETE_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    object_key: str
    delete_at: _timestamp_pb2.Timestamp
    attempts: int
    last_error: str
    def __init__(self, bucket: _Optional[str] = ..., object_key: _Optional[str] = ..., delete_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ListPendingResponse(_message.Message):
    __slots__ = ("deletions", "next_page_token", "total")
    DELETIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    deletions: _containers.RepeatedCompositeFieldContainer[PendingDeletion]
    next_page_token: str
    total: int
    def __init__(self, deletions: _Optional[_Iterable[_Union[PendingDeletion, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class RunSweepRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunSweepResponse(_message.Message):
    __slots__ = ("objects_deleted", "objects_failed", "temp_files_removed", "temp_bytes_freed")
    OBJECTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    TEMP_FILES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    TEMP_BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    objects_deleted: int
    objects_failed: int
    temp_files_removed: int
    temp_bytes_freed: int
    def __init__(self, objects_deleted: _Optional[int] = ..., objects_failed: _Optional[int] = ..., temp_files_removed: _Optional[int] = ..., temp_bytes_freed: _Optional[int] = ...) -> None: ...
