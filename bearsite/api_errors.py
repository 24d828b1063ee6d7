"""The API's exception handler: DRF's, plus the request limits Django enforces while DRF reads
the body. Django would answer those with its HTML "Bad Request (400)" page; an API client gets
JSON that names the limit instead."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"The request body is larger than the limit of {limit / 2**20:.1f} MiB "
                       "(files go in a multipart upload, which has no such limit).",
             "code": "too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFilesSent):
        return Response(
            {"detail": f"At most {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files per upload.",
             "code": "too_many_files"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response(
            {"detail": f"At most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields per request.",
             "code": "too_many_fields"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(exc, context)
