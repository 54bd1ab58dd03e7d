"""Thin async Kubernetes API layer: raw dicts, typed errors, list and watch.

Why: the syncer's hot path (watch → queue → write) cannot afford model
classes or a synchronous client, and every component talks to several
apiservers (the super cluster and each tenant's).  This package is the one
place that speaks HTTP to an apiserver; everything above it handles plain
``dict`` objects.
"""

from vcluster.kube.client import ApiClient, ClientConfig, WatchEvent
from vcluster.kube.errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from vcluster.kube.resources import Resource

__all__ = [
    "AlreadyExists",
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "Resource",
    "TooManyRequests",
    "Unauthorized",
    "WatchEvent",
]
