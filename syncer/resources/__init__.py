"""Per-kind syncers, registered explicitly.

Why an explicit tuple: the order is the order of dependencies (a namespace
before what lives in it, service accounts, claims and disruption budgets before
pods), and nothing is registered by import side effects.  Adding a kind is one
module under ``syncer/resources/`` and one entry here.  Events are not in the registry: they only
flow up and are handled by the engine with :mod:`syncer.resources.event`.
"""

from __future__ import annotations

from syncer.resources.base import Kind
from syncer.resources.endpoints import ENDPOINTS
from syncer.resources.ingress import INGRESS
from syncer.resources.namespace import NAMESPACE
from syncer.resources.networkpolicy import NETWORKPOLICY
from syncer.resources.pdb import PDB
from syncer.resources.pod import POD
from syncer.resources.pvc import PVC
from syncer.resources.service import SERVICE
from syncer.resources.simple import CONFIGMAP, SECRET, SERVICEACCOUNT

REGISTRY: tuple[Kind, ...] = (NAMESPACE, SERVICEACCOUNT, CONFIGMAP, SECRET, SERVICE, ENDPOINTS, NETWORKPOLICY,
                              INGRESS, PVC, PDB, POD)
BY_KIND: dict[str, Kind] = {k.kind: k for k in REGISTRY}

__all__ = ["BY_KIND", "REGISTRY", "Kind"]
