"""OpenAPI v3 schemas of the Tenant and ClusterVersion CRDs, as Python data.

Why: this is the single source of truth the apiserver enforces.  Every enum,
default and limit that the models in :mod:`tenant_crd.models` also check is a
module constant here, so both read the same value.  The schemas are
*structural* (every field typed, defaults inside), carry CEL rules
(``x-kubernetes-validations``) for what plain OpenAPI cannot say (the tenant
name rules of :mod:`vcluster.naming`, mutually exclusive fields), and
printer columns for ``kubectl get``.
"""

from __future__ import annotations

from typing import Any

from vcluster import naming

Schema = dict[str, Any]

TENANT_KIND = "Tenant"
TENANT_PLURAL = "tenants"
TENANT_SHORT = "tnt"
CLUSTER_VERSION_KIND = "ClusterVersion"
CLUSTER_VERSION_PLURAL = "clusterversions"
CLUSTER_VERSION_SHORT = "cv"

BACKENDS: tuple[str, ...] = ("local", "pods")
#: The operator's default backend outside a pod (in a pod: ``pods``); see ``OperatorSettings.default_backend``.
DEFAULT_BACKEND = "local"
EXPOSE_TYPES: tuple[str, ...] = ("ClusterIP", "NodePort", "LoadBalancer")
DEFAULT_EXPOSE_TYPE = "ClusterIP"
POD_SECURITY_LEVELS: tuple[str, ...] = ("privileged", "baseline", "restricted")
DEFAULT_POD_SECURITY = "baseline"
#: ``Degraded``: provisioned, but the control plane is not healthy right now (see the ``Ready`` condition).
PHASES: tuple[str, ...] = ("Pending", "Provisioning", "Ready", "Degraded", "Failed", "Terminating")
CONDITION_STATUSES: tuple[str, ...] = ("True", "False", "Unknown")
TOLERATION_OPERATORS: tuple[str, ...] = ("Exists", "Equal")
TAINT_EFFECTS: tuple[str, ...] = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MIN_REPLICAS = 1
MAX_REPLICAS = 5
#: Size of the etcd data volume (a PVC per etcd replica) of the pods backend.
DEFAULT_STORAGE_SIZE = "1Gi"
#: A storage request: a positive quantity without milli units (``1Gi``, ``500M``, ``2``).
STORAGE_SIZE_PATTERN = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)([KMGTPE]i|[kMGTPE])?$"
#: A Kubernetes release such as ``v1.36.3``.
VERSION_PATTERN = r"^v1\.[0-9]+\.[0-9]+$"
#: A DNS-1123 subdomain (object names such as a ClusterVersion's).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A flag name without leading dashes (``feature-gates``, ``v``).
FLAG_PATTERN = r"^[a-z0-9][-a-z0-9]*$"
#: A resource quantity (the apiserver's own regular expression).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
#: A label/annotation key prefix such as ``example.com/`` or ``team.example.com``.
PREFIX_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/?$"
#: An extra kind to sync, as ``<plural>.<group>`` (``widgets.example.com``) or a core plural.
EXTRA_KIND_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: An IPv4 or IPv6 network in CIDR notation (checked precisely by the models).
#: Protocols of NetworkPolicy ports.
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")
CIDR_PATTERN = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"
#: Image references: no whitespace.
IMAGE_PATTERN = r"^[^\s]+$"
#: A DNS subdomain whose labels are at most 63 characters (a tenant's cluster domain).
DOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
#: The cluster domain of a tenant that names none (Kubernetes' default).
DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def _str(**extra: Any) -> Schema:
    return {"type": "string", **extra}


def _str_list(*, item: Schema | None = None, max_items: int = 64) -> Schema:
    return {
        "type": "array",
        "items": item or _str(),
        "maxItems": max_items,
        "x-kubernetes-list-type": "set",
    }


def _str_map(*, description: str, key_rule: tuple[str, str] | None = None) -> Schema:
    out: Schema = {"type": "object", "description": description, "additionalProperties": _str()}
    if key_rule is not None:
        rule, message = key_rule
        out["x-kubernetes-validations"] = [{"rule": rule, "message": message}]
    return out


def _quantity_map(description: str) -> Schema:
    return {
        "type": "object",
        "description": description,
        # int-or-string; the pattern applies to the string form only.
        "additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN},
    }


def _extra_args(description: str) -> Schema:
    return _str_map(
        description=description,
        key_rule=(
            f"self.all(k, k.matches('{FLAG_PATTERN}'))",
            "flag names are lowercase words joined by '-', without leading dashes",
        ),
    )


def _control_plane() -> Schema:
    return {
        "type": "object",
        "description": "The tenant's own control plane (kube-apiserver + kube-controller-manager).",
        "default": {},
        "properties": {
            "version": _str(
                pattern=VERSION_PATTERN,
                description="Kubernetes version (vMAJOR.MINOR.PATCH); exclusive with clusterVersionRef.",
            ),
            "clusterVersionRef": _str(
                pattern=NAME_PATTERN,
                maxLength=253,
                description="Name of a ClusterVersion to use as the template.",
            ),
            "backend": _str(
                enum=list(BACKENDS),
                description="local: supervised processes next to the operator; pods: workloads in the root "
                            "namespace. Unset: the operator's default (pods when it runs in a pod, else local), "
                            "kept once chosen (status.backend).",
            ),
            "replicas": {
                "type": "integer",
                "minimum": MIN_REPLICAS,
                "maximum": MAX_REPLICAS,
                "default": MIN_REPLICAS,
                "description": "kube-apiserver replicas (pods backend; the local backend runs one).",
            },
            "expose": {
                "type": "object",
                "default": {},
                "description": "How the tenant apiserver is exposed (pods backend).",
                "properties": {
                    "type": _str(enum=list(EXPOSE_TYPES), default=DEFAULT_EXPOSE_TYPE),
                    "host": _str(
                        maxLength=253,
                        description="Extra host name or IP put into the serving certificate and endpoint.",
                    ),
                },
            },
            "storage": {
                "type": "object",
                "default": {},
                "description": (
                    "etcd data volume of the pods backend: a PersistentVolumeClaim from the StatefulSet's "
                    "claim template (immutable once created: a change is reported, not applied). "
                    "The local backend keeps etcd data in its state folder."
                ),
                "properties": {
                    "size": {
                        **_str(
                            pattern=STORAGE_SIZE_PATTERN,
                            maxLength=32,
                            default=DEFAULT_STORAGE_SIZE,
                            description="Requested size of the etcd volume (a quantity such as 1Gi).",
                        ),
                        "x-kubernetes-validations": [
                            {"rule": "!isQuantity(self) || quantity(self).isGreaterThan(quantity('0'))",
                             "message": "storage.size must be greater than zero"},
                        ],
                    },
                    "storageClassName": _str(
                        pattern=NAME_PATTERN,
                        maxLength=253,
                        description="StorageClass of the etcd volume; unset: the cluster's default class.",
                    ),
                },
            },
            "extraArgs": {
                "type": "object",
                "default": {},
                "description": "Extra component flags, without leading dashes.",
                "properties": {
                    "apiserver": _extra_args("Extra kube-apiserver flags."),
                    "controllerManager": _extra_args("Extra kube-controller-manager flags."),
                    "etcd": _extra_args("Extra etcd flags (the tenant's own etcd)."),
                },
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": "!(has(self.version) && has(self.clusterVersionRef))",
                "message": "set at most one of controlPlane.version and controlPlane.clusterVersionRef",
            },
            {
                "rule": "!has(self.replicas) || self.replicas == 1 || !has(self.backend) || self.backend == 'pods'",
                "message": "the local backend runs exactly one replica",
            },
        ],
    }


def _toleration() -> Schema:
    return {
        "type": "object",
        "properties": {
            "key": _str(maxLength=316),
            "operator": _str(enum=list(TOLERATION_OPERATORS), default="Equal"),
            "value": _str(maxLength=63),
            "effect": _str(enum=list(TAINT_EFFECTS)),
            "tolerationSeconds": {"type": "integer", "format": "int64", "minimum": 0},
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "message": "a toleration with operator Exists must not have a value",
            },
            {
                "rule": "has(self.key) || self.operator == 'Exists'",
                "message": "a toleration without key must use operator Exists",
            },
        ],
    }


def _isolation() -> Schema:
    return {
        "type": "object",
        "default": {},
        "description": "Policy applied to every super namespace and pod of the tenant.",
        "properties": {
            "resourceQuota": {
                "type": "object",
                "description": "A ResourceQuota in every super namespace of the tenant.",
                "properties": {"hard": _quantity_map("ResourceQuota spec.hard.")},
            },
            "limitRange": {
                "type": "object",
                "description": "Container defaults, as a LimitRange in every super namespace of the tenant.",
                "properties": {
                    "defaults": _quantity_map("Default container limits."),
                    "defaultRequests": _quantity_map("Default container requests."),
                },
            },
            "networkPolicy": {
                "type": "boolean",
                "default": True,
                "description": "Keep other tenants out with a NetworkPolicy (on by default).",
            },
            "podSecurity": _str(
                enum=list(POD_SECURITY_LEVELS),
                default=DEFAULT_POD_SECURITY,
                description="Pod Security Standard enforced on the tenant's pods.",
            ),
            "nodeSelector": _str_map(description="Added to every pod of the tenant."),
            "tolerations": {"type": "array", "maxItems": 32, "items": _toleration()},
            "runtimeClassName": _str(pattern=NAME_PATTERN, maxLength=253),
            "allowedStorageClasses": _str_list(item=_str(pattern=NAME_PATTERN, maxLength=253)),
            "allowedPriorityClasses": _str_list(item=_str(pattern=NAME_PATTERN, maxLength=253)),
            "allowedTolerations": {
                "type": "array",
                "maxItems": 32,
                "description": "Tolerations tenant pods may carry beyond the built-in node-condition ones "
                "(the tenant's own `tolerations` are always allowed).",
                "items": _toleration(),
            },
            "exposure": _exposure(),
            "allowedEndpointCIDRs": _str_list(
                item=_str(pattern=CIDR_PATTERN, maxLength=49),
                max_items=32,
            ),
            "allowedIngressFrom": {
                "type": "array",
                "maxItems": 16,
                "description": "Super-cluster pods (ingress controllers, monitoring) allowed to reach the tenant's "
                               "pods past the default NetworkPolicy.",
                "items": _ingress_peer(),
            },
            "allowedEgressTo": {
                "type": "array",
                "maxItems": 16,
                "description": "Addresses (ipBlock) or super-cluster pods (namespaceSelector, podSelector) the "
                               "tenant's pods may reach past the default NetworkPolicy, which denies all else.",
                "items": _egress_peer(),
            },
        },
    }


def _egress_peer() -> Schema:
    peer = _ingress_peer()
    return {
        "type": "object",
        "description": "Either ipBlock or namespaceSelector (with an optional podSelector).",
        "properties": {
            "ipBlock": {
                "type": "object",
                "required": ["cidr"],
                "description": "Addresses outside the cluster: cidr minus except (e.g. 0.0.0.0/0 except the "
                               "cluster's pod, service and node networks).",
                "properties": {
                    "cidr": _str(pattern=CIDR_PATTERN, maxLength=49),
                    "except": _str_list(item=_str(pattern=CIDR_PATTERN, maxLength=49), max_items=32),
                },
            },
            "namespaceSelector": {**peer["properties"]["namespaceSelector"],
                                  "description": "Super namespaces of the pods they may reach ({} = all)."},
            "podSelector": {**peer["properties"]["podSelector"],
                            "description": "Pods in them they may reach (absent or {} = all)."},
            "ports": {**peer["properties"]["ports"], "description": "Ports they may reach (empty: all)."},
        },
    }


def _ingress_peer() -> Schema:
    labels = {"type": "object", "properties": {"matchLabels": _str_map(description="Labels to match (all).")}}
    return {
        "type": "object",
        "required": ["namespaceSelector"],
        "properties": {
            "namespaceSelector": {**labels, "description": "Super namespaces of the allowed pods ({} = all)."},
            "podSelector": {**labels, "description": "Allowed pods in them (absent or {} = all)."},
            "ports": {
                "type": "array",
                "maxItems": 16,
                "description": "Ports of the tenant's pods they may reach (empty: all).",
                "items": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "protocol": _str(enum=list(PROTOCOLS), default="TCP"),
                    },
                },
            },
        },
    }


def _exposure() -> Schema:
    flag = {"type": "boolean", "default": False}
    return {
        "type": "object",
        "default": {},
        "description": "What tenant Services and pods may expose outside the super cluster (all off by default).",
        "properties": {
            "nodePort": {**flag, "description": "Services of type NodePort (a port on every node)."},
            "loadBalancer": {**flag, "description": "Services of type LoadBalancer (implies nodePort)."},
            "externalIPs": {**flag, "description": "Services with spec.externalIPs."},
            "externalName": {**flag, "description": "Services of type ExternalName."},
            "hostPorts": {
                "type": "array",
                "maxItems": 16,
                "description": "Container hostPort ranges allowed under the baseline/restricted pod security.",
                "items": {
                    "type": "object",
                    "required": ["min", "max"],
                    "properties": {
                        "min": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "max": {"type": "integer", "minimum": 1, "maximum": 65535},
                    },
                    "x-kubernetes-validations": [
                        {"rule": "self.min <= self.max", "message": "a hostPort range needs min <= max"}
                    ],
                },
            },
        },
    }


def _dns() -> Schema:
    return {
        "type": "object",
        "default": {},
        "description": "The tenant's DNS (one CoreDNS per tenant, provided by the operator).",
        "properties": {
            "clusterDomain": _str(
                default=DEFAULT_CLUSTER_DOMAIN, pattern=DOMAIN_PATTERN, maxLength=253,
                description="The tenant's cluster domain: its pods resolve <service>.<namespace>.svc.<clusterDomain> "
                            "and search it. Set at creation; it cannot change (running pods keep their search "
                            "path).",
                **{"x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "spec.dns.clusterDomain cannot change once set"},
                    {"rule": "!(self == 'arpa' || self.endsWith('.arpa'))",
                     "message": "spec.dns.clusterDomain must not be a reverse-lookup zone (arpa)"},
                ]},
            ),
        },
    }


def _sync() -> Schema:
    return {
        "type": "object",
        "default": {},
        "description": "What the syncer copies besides the built-in kinds.",
        "properties": {
            "extraKinds": _str_list(item=_str(pattern=EXTRA_KIND_PATTERN, maxLength=253)),
            "opaqueMetadataPrefixes": _str_list(item=_str(pattern=PREFIX_PATTERN, maxLength=253)),
            "transparentMetadataPrefixes": _str_list(item=_str(pattern=PREFIX_PATTERN, maxLength=253)),
        },
    }


def _condition() -> Schema:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": _str(maxLength=316),
            "status": _str(enum=list(CONDITION_STATUSES)),
            "reason": _str(maxLength=1024),
            "message": _str(maxLength=32768),
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "lastTransitionTime": _str(format="date-time"),
        },
    }


def _tenant_status() -> Schema:
    return {
        "type": "object",
        "properties": {
            "phase": _str(enum=list(PHASES)),
            "conditions": {
                "type": "array",
                "items": _condition(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "observedGeneration": {"type": "integer", "format": "int64"},
            "clusterKey": _str(),
            "endpoint": _str(),
            "version": _str(),
            "backend": _str(),
            "kubeconfigSecret": {
                "type": "object",
                "properties": {"namespace": _str(), "name": _str()},
            },
            "dns": {
                "type": "object",
                "description": "The tenant's DNS server: the super ClusterIP tenant pods use as nameserver, "
                               "and where the local backend's server listens.",
                "properties": {"clusterIP": _str(), "endpoint": _str()},
            },
            "certificates": {
                "type": "object",
                "description": "The operator's certificates of this tenant: the earliest expiry, when the first "
                               "of them comes due for renewal (the operator renews it then, without a spec "
                               "change, and posts a CertificatesRenewed Event) and which one that is.",
                "properties": {"notAfter": _str(format="date-time"), "renewAfter": _str(format="date-time"),
                               "next": _str()},
            },
            "counts": {
                "type": "object",
                "description": "Counters the operator and syncer report.",
                "additionalProperties": {"type": "integer"},
            },
            "sync": {
                "type": "object",
                "description": "Written by the syncer (with the Synced condition): whether it reaches the "
                               "tenant apiserver, objects waiting (queued or failing), and when it last "
                               "compared all of the tenant's objects.",
                "properties": {
                    "reachable": {"type": "boolean"},
                    "pending": {"type": "integer", "format": "int64", "minimum": 0},
                    "lastFullSync": _str(format="date-time"),
                },
            },
            "quota": {
                "type": "object",
                "description": "The tenant-wide quota in force (the Tenant's or the operator's default) and "
                               "the tenant's usage of it across all its super namespaces (written by the syncer).",
                "properties": {
                    "hard": {"type": "object", "additionalProperties": _str()},
                    "used": {"type": "object", "additionalProperties": _str()},
                    "source": _str(enum=["Tenant", "OperatorDefault"]),
                },
            },
            "limitRange": {
                "type": "object",
                "description": "The container defaults in force (the Tenant's or the operator's default).",
                "properties": {
                    "defaults": {"type": "object", "additionalProperties": _str()},
                    "defaultRequests": {"type": "object", "additionalProperties": _str()},
                    "source": _str(enum=["Tenant", "OperatorDefault"]),
                },
            },
        },
    }


def tenant_schema() -> Schema:
    """The Tenant's openAPIV3Schema."""
    return {
        "type": "object",
        "description": "One tenant: its own control plane, owners, isolation policy and sync options.",
        "properties": {
            "apiVersion": _str(),
            "kind": _str(),
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "default": {},
                "properties": {
                    "controlPlane": _control_plane(),
                    "owners": {
                        "type": "object",
                        "default": {},
                        "description": "Users and groups bound to cluster-admin in the tenant control plane.",
                        "properties": {
                            "users": _str_list(item=_str(minLength=1, maxLength=253)),
                            "groups": _str_list(item=_str(minLength=1, maxLength=253)),
                        },
                    },
                    "isolation": _isolation(),
                    "sync": _sync(),
                    "dns": _dns(),
                },
            },
            "status": _tenant_status(),
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {naming.MAX_TENANT_NAME}",
                "message": f"a Tenant name must be at most {naming.MAX_TENANT_NAME} characters",
            },
            {
                "rule": f"!self.metadata.name.contains('{naming.SEPARATOR}')",
                "message": f"a Tenant name must not contain '{naming.SEPARATOR}'",
            },
            {
                "rule": "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                "message": "a Tenant name must be a DNS label (lowercase letters, digits, '-')",
            },
        ],
    }


def cluster_version_schema() -> Schema:
    """The ClusterVersion's openAPIV3Schema."""
    image = _str(pattern=IMAGE_PATTERN, maxLength=512)
    return {
        "type": "object",
        "description": "A control-plane template (component version, images, flags) that Tenants refer to.",
        "properties": {
            "apiVersion": _str(),
            "kind": _str(),
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["version"],
                "properties": {
                    "version": _str(pattern=VERSION_PATTERN, description="Kubernetes version."),
                    "images": {
                        "type": "object",
                        "default": {},
                        "description": "Images of the pods backend; defaults follow the version.",
                        "properties": {
                            "etcd": image,
                            "apiserver": image,
                            "controllerManager": image,
                        },
                    },
                    "apiserver": {
                        "type": "object",
                        "default": {},
                        "properties": {"extraArgs": _extra_args("Extra kube-apiserver flags.")},
                    },
                    "controllerManager": {
                        "type": "object",
                        "default": {},
                        "properties": {"extraArgs": _extra_args("Extra kube-controller-manager flags.")},
                    },
                },
            },
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    schema: Schema,
    columns: list[Schema],
    status: bool,
) -> Schema:
    version: Schema = {
        "name": naming.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": columns,
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{naming.GROUP}"},
        "spec": {
            "group": naming.GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["virtualcluster"],
            },
            "versions": [version],
        },
    }


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def tenant_crd() -> Schema:
    """The Tenant CustomResourceDefinition."""
    return _crd(
        kind=TENANT_KIND,
        plural=TENANT_PLURAL,
        short=TENANT_SHORT,
        schema=tenant_schema(),
        status=True,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
            {"name": "Synced", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Synced")].status'},
            {"name": "Pending", "type": "integer", "jsonPath": ".status.sync.pending"},
            {"name": "Last Sync", "type": "date", "jsonPath": ".status.sync.lastFullSync", "priority": 1},
            {"name": "Version", "type": "string", "jsonPath": ".status.version"},
            {"name": "Backend", "type": "string", "jsonPath": ".spec.controlPlane.backend", "priority": 1},
            {"name": "Key", "type": "string", "jsonPath": ".status.clusterKey", "priority": 1},
            {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
            _AGE,
        ],
    )


def cluster_version_crd() -> Schema:
    """The ClusterVersion CustomResourceDefinition."""
    return _crd(
        kind=CLUSTER_VERSION_KIND,
        plural=CLUSTER_VERSION_PLURAL,
        short=CLUSTER_VERSION_SHORT,
        schema=cluster_version_schema(),
        status=False,
        columns=[
            {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
            _AGE,
        ],
    )


def all_crds() -> dict[str, Schema]:
    """Every CRD by file stem (``manifests/crds/<stem>.yaml``)."""
    return {
        f"{naming.GROUP}_{TENANT_PLURAL}": tenant_crd(),
        f"{naming.GROUP}_{CLUSTER_VERSION_PLURAL}": cluster_version_crd(),
    }
