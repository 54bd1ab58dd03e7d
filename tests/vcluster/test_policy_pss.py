"""Pod Security Standards, control by control, as the syncer's pod check applies them.

Why: a tenant is cluster-admin of its own control plane, so every pod it writes
is untrusted input to the shared nodes.  The check in :mod:`vcluster.policy`
is what keeps a pod the policy refuses out of the super cluster (and tells the
tenant why), so each control of the upstream ``baseline`` and ``restricted``
profiles (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
has a case here that fails if the check for it is dropped or loosened: the
forbidden value is refused, the allowed values pass, in every container list,
and every reason starts with where the problem is, so the tenant's Event
points at the field to fix.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tenant_crd import TenantSpec
from vcluster import naming, policy

BASELINE, RESTRICTED, PRIVILEGED = "baseline", "restricted", "privileged"


def _pod(**spec: Any) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "busybox"}], **spec}


def _container(sc: dict[str, Any] | None = None, *, name: str = "c", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": "busybox", **extra}
    if sc is not None:
        out["securityContext"] = sc
    return out


#: A container that satisfies every restricted control by itself.
_OK_SC: dict[str, Any] = {
    "allowPrivilegeEscalation": False, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
}


def _restricted(sc: dict[str, Any] | None = None, *, pod_sc: dict[str, Any] | None = None,
                **spec: Any) -> dict[str, Any]:
    """A pod that passes ``restricted`` except for what ``sc`` (container) and ``pod_sc`` change."""
    out: dict[str, Any] = {"containers": [_container({**_OK_SC, **(sc or {})})], **spec}
    if pod_sc is not None:
        out["securityContext"] = pod_sc
    return out


# (id, level, pod spec, expected reasons as (start of the reason, a word it names))
Case = tuple[str, str, dict[str, Any], list[tuple[str, str]]]

BASELINE_CASES: list[Case] = [
    # host namespaces
    ("host-network", BASELINE, _pod(hostNetwork=True), [("hostNetwork", "not allowed")]),
    ("host-pid", BASELINE, _pod(hostPID=True), [("hostPID", "not allowed")]),
    ("host-ipc", BASELINE, _pod(hostIPC=True), [("hostIPC", "not allowed")]),
    ("host-namespaces-false", BASELINE, _pod(hostNetwork=False, hostPID=False, hostIPC=False), []),
    # privileged
    ("privileged", BASELINE, _pod(containers=[_container({"privileged": True})]),
     [("containers[c]", "privileged")]),
    ("privileged-false", BASELINE, _pod(containers=[_container({"privileged": False})]), []),
    # capabilities
    ("cap-baseline-set", BASELINE,
     _pod(containers=[_container({"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE", "KILL"]}})]), []),
    ("cap-net-admin", BASELINE, _pod(containers=[_container({"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}})]),
     [("containers[c]", "NET_ADMIN")]),
    # hostPath
    ("host-path", BASELINE, _pod(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
     [("volume 'root'", "hostPath")]),
    ("other-volumes", BASELINE, _pod(volumes=[{"name": "e", "emptyDir": {}}, {"name": "n", "nfs": {}}]), []),
    # host ports
    ("host-port", BASELINE, _pod(containers=[_container(ports=[{"containerPort": 80, "hostPort": 8080}])]),
     [("containers[c]", "8080")]),
    ("host-port-zero", BASELINE, _pod(containers=[_container(ports=[{"containerPort": 80, "hostPort": 0}])]), []),
    # SELinux
    ("selinux-pod-spc", BASELINE, _pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
     [("securityContext.seLinuxOptions", "type")]),
    ("selinux-container-spc", BASELINE, _pod(containers=[_container({"seLinuxOptions": {"type": "spc_t"}})]),
     [("containers[c]", "seLinuxOptions")]),
    ("selinux-allowed-types", BASELINE,
     _pod(securityContext={"seLinuxOptions": {"type": "container_t", "level": "s0:c1"}},
          containers=[_container({"seLinuxOptions": {"type": "container_init_t"}}),
                      _container({"seLinuxOptions": {"type": "container_kvm_t"}}, name="d"),
                      _container({"seLinuxOptions": {"level": "s0"}}, name="e")]), []),
    ("selinux-pod-user", BASELINE, _pod(securityContext={"seLinuxOptions": {"user": "system_u"}}),
     [("securityContext.seLinuxOptions", "user")]),
    ("selinux-container-role", BASELINE, _pod(containers=[_container({"seLinuxOptions": {"role": "sysadm_r"}})]),
     [("containers[c]", "role")]),
    # /proc mount
    ("proc-mount-unmasked", BASELINE, _pod(containers=[_container({"procMount": "Unmasked"})]),
     [("containers[c]", "Unmasked")]),
    ("proc-mount-default", BASELINE, _pod(containers=[_container({"procMount": "Default"})]), []),
    # seccomp
    ("seccomp-pod-unconfined", BASELINE, _pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
     [("securityContext.seccompProfile", "Unconfined")]),
    ("seccomp-container-unconfined", BASELINE,
     _pod(containers=[_container({"seccompProfile": {"type": "Unconfined"}})]),
     [("containers[c]", "Unconfined")]),
    ("seccomp-confined", BASELINE,
     _pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
          containers=[_container({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})]), []),
    # AppArmor (field form, Kubernetes >= 1.30)
    ("apparmor-pod-unconfined", BASELINE, _pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
     [("securityContext.appArmorProfile", "Unconfined")]),
    ("apparmor-container-unconfined", BASELINE,
     _pod(containers=[_container({"appArmorProfile": {"type": "Unconfined"}})]),
     [("containers[c]", "appArmorProfile")]),
    ("apparmor-runtime-default", BASELINE,
     _pod(securityContext={"appArmorProfile": {"type": "RuntimeDefault"}},
          containers=[_container({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}})]), []),
    # Windows HostProcess
    ("host-process-pod", BASELINE, _pod(securityContext={"windowsOptions": {"hostProcess": True}}),
     [("securityContext.windowsOptions", "hostProcess")]),
    ("host-process-container", BASELINE, _pod(containers=[_container({"windowsOptions": {"hostProcess": True}})]),
     [("containers[c]", "hostProcess")]),
    # sysctls
    ("sysctl-unsafe", BASELINE, _pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
     [("sysctl 'kernel.msgmax'", "not allowed")]),
    ("sysctl-safe", BASELINE, _pod(securityContext={"sysctls": [
        {"name": "net.ipv4.ip_local_port_range", "value": "1024 65000"},
        {"name": "net.ipv4.ping_group_range", "value": "0 1"}, {"name": "kernel.shm_rmid_forced", "value": "1"}]}),
     []),
    # every container list is checked
    ("init-container", BASELINE, _pod(initContainers=[_container({"privileged": True}, name="i")]),
     [("initContainers[i]", "privileged")]),
    ("ephemeral-container", BASELINE,
     _pod(ephemeralContainers=[_container({"capabilities": {"add": ["SYS_PTRACE"]}}, name="debug")]),
     [("ephemeralContainers[debug]", "SYS_PTRACE")]),
    ("several-reasons", BASELINE,
     _pod(hostPID=True, containers=[_container({"privileged": True}), _container({"procMount": "Unmasked"}, name="d")]),
     [("hostPID", "not allowed"), ("containers[c]", "privileged"), ("containers[d]", "procMount")]),
    # levels: privileged checks nothing of the profile, restricted includes baseline, unknown means baseline
    ("privileged-allows-everything", PRIVILEGED,
     _pod(hostNetwork=True, volumes=[{"name": "v", "hostPath": {"path": "/"}}],
          containers=[_container({"privileged": True, "seccompProfile": {"type": "Unconfined"}})]), []),
    ("unknown-level-is-baseline", "bogus", _pod(hostIPC=True), [("hostIPC", "not allowed")]),
    ("restricted-includes-baseline", RESTRICTED, _restricted(hostNetwork=True), [("hostNetwork", "not allowed")]),
]

RESTRICTED_CASES: list[Case] = [
    ("restricted-ok", RESTRICTED, _restricted(), []),
    ("restricted-allowed-volumes", RESTRICTED, _restricted(volumes=[
        {"name": "a", "configMap": {"name": "x"}}, {"name": "b", "csi": {"driver": "d"}},
        {"name": "c", "downwardAPI": {}}, {"name": "d", "emptyDir": {}}, {"name": "e", "ephemeral": {}},
        {"name": "f", "persistentVolumeClaim": {"claimName": "x"}}, {"name": "g", "projected": {}},
        {"name": "h", "secret": {"secretName": "x"}}]), []),
    ("restricted-nfs", RESTRICTED, _restricted(volumes=[{"name": "share", "nfs": {"server": "x", "path": "/"}}]),
     [("volume 'share'", "nfs")]),
    ("restricted-host-path-once", RESTRICTED, _restricted(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
     [("volume 'h'", "hostPath")]),
    ("escalation-unset", RESTRICTED, _restricted({"allowPrivilegeEscalation": None}),
     [("containers[c]", "allowPrivilegeEscalation")]),
    ("escalation-true", RESTRICTED, _restricted({"allowPrivilegeEscalation": True}),
     [("containers[c]", "allowPrivilegeEscalation")]),
    ("non-root-unset", RESTRICTED, _restricted({"runAsNonRoot": None}), [("containers[c]", "runAsNonRoot")]),
    ("non-root-false", RESTRICTED, _restricted({"runAsNonRoot": False}), [("containers[c]", "runAsNonRoot")]),
    ("non-root-from-pod", RESTRICTED, _restricted({"runAsNonRoot": None}, pod_sc={"runAsNonRoot": True}), []),
    ("non-root-container-overrides-pod", RESTRICTED,
     _restricted({"runAsNonRoot": False}, pod_sc={"runAsNonRoot": True}), [("containers[c]", "runAsNonRoot")]),
    ("non-root-container-true-pod-false", RESTRICTED, _restricted(pod_sc={"runAsNonRoot": False}), []),
    ("run-as-root-pod", RESTRICTED, _restricted(pod_sc={"runAsUser": 0}), [("securityContext.runAsUser", "0")]),
    ("run-as-root-container", RESTRICTED, _restricted({"runAsUser": 0}), [("containers[c]", "runAsUser")]),
    ("run-as-user-1", RESTRICTED, _restricted({"runAsUser": 1}, pod_sc={"runAsUser": 1}), []),
    ("seccomp-unset", RESTRICTED, _restricted({"seccompProfile": None}), [("containers[c]", "seccompProfile")]),
    ("seccomp-localhost", RESTRICTED, _restricted({"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}),
     []),
    ("seccomp-from-pod-runtime-default", RESTRICTED,
     _restricted({"seccompProfile": None}, pod_sc={"seccompProfile": {"type": "RuntimeDefault"}}), []),
    ("seccomp-from-pod-localhost", RESTRICTED,
     _restricted({"seccompProfile": None}, pod_sc={"seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}),
     []),
    ("seccomp-pod-unconfined-container-unset", RESTRICTED,
     _restricted({"seccompProfile": None}, pod_sc={"seccompProfile": {"type": "Unconfined"}}),
     [("securityContext.seccompProfile", "Unconfined"), ("containers[c]", "seccompProfile")]),
    ("drop-not-all", RESTRICTED, _restricted({"capabilities": {"drop": ["NET_RAW"]}}),
     [("containers[c]", "drop ALL")]),
    ("add-net-bind-service", RESTRICTED,
     _restricted({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}), []),
    ("add-chown", RESTRICTED, _restricted({"capabilities": {"drop": ["ALL"], "add": ["CHOWN", "NET_BIND_SERVICE"]}}),
     [("containers[c]", "CHOWN")]),
    ("add-sys-admin-reported-once", RESTRICTED,
     _restricted({"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}), [("containers[c]", "SYS_ADMIN")]),
    ("restricted-init-container", RESTRICTED,
     {**_restricted(), "initContainers": [_container({**_OK_SC, "allowPrivilegeEscalation": True}, name="i")]},
     [("initContainers[i]", "allowPrivilegeEscalation")]),
]

CASES = BASELINE_CASES + RESTRICTED_CASES


def _clean(value: Any) -> Any:
    """Drop ``None`` values (a field set to None in a case means: not set)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@pytest.mark.parametrize(("level", "spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_control_refuses_what_it_forbids_and_only_that(
    level: str, spec: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    reasons = policy.check_pod(_clean(spec), policy.PodPolicy(pod_security=level))
    assert all(isinstance(r, str) for r in reasons), reasons
    assert len(reasons) == len(expected), reasons
    for reason, (where, word) in zip(reasons, expected, strict=True):
        assert reason.startswith(where), (reason, where)
        assert word in reason, (reason, word)


def test_a_nameless_container_is_still_reported() -> None:
    reasons = policy.check_pod({"containers": [{"securityContext": {"privileged": True}}]}, policy.PodPolicy())
    assert len(reasons) == 1
    assert reasons[0].startswith("containers[")
    assert "None" not in reasons[0]


def test_a_nameless_volume_is_still_reported() -> None:
    for level, volume in ((BASELINE, {"hostPath": {"path": "/"}}), (RESTRICTED, {"hostPath": {"path": "/"}}),
                          (RESTRICTED, {"nfs": {"server": "x", "path": "/"}})):
        spec = _restricted(volumes=[volume])
        reasons = policy.check_pod(spec, policy.PodPolicy(pod_security=level))
        assert len(reasons) == 1
        assert reasons[0].startswith("volume ")
        assert "None" not in reasons[0]


@pytest.mark.parametrize(
    ("spec", "allowed", "refused"),
    [
        pytest.param(_pod(nodeName="n1"), (), True, id="pinned-node"),
        pytest.param(_pod(nodeName=""), (), False, id="empty-node-name"),
        pytest.param(_pod(priorityClassName="high"), (), True, id="priority-none-allowed"),
        pytest.param(_pod(priorityClassName="high"), ("low", "high"), False, id="priority-allowed"),
        pytest.param(_pod(priorityClassName="high"), ("low",), True, id="priority-other-allowed"),
    ],
)
def test_scheduling_fields(spec: dict[str, Any], allowed: tuple[str, ...], refused: bool) -> None:
    for level in (PRIVILEGED, BASELINE):
        reasons = policy.check_pod(spec, policy.PodPolicy(pod_security=level, allowed_priority_classes=allowed))
        assert bool(reasons) is refused
        assert all(r.split()[0] in ("nodeName", "priorityClassName") for r in reasons)


# ---- from the Tenant spec ----------------------------------------------------------


def _iso(**isolation: Any) -> Any:
    return TenantSpec.from_dict({"isolation": isolation}).isolation


def test_pod_policy_carries_every_field_of_the_spec() -> None:
    tol = {"key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}
    pol = policy.pod_policy(_iso(podSecurity="restricted", nodeSelector={"pool": "t"}, tolerations=[tol],
                                 runtimeClassName="gvisor", allowedPriorityClasses=["high"],
                                 allowedStorageClasses=["fast"]))
    assert policy.check_pod(_pod(), pol) != []  # restricted refuses a plain pod
    assert policy.check_pod(_restricted(priorityClassName="high"), pol) == []
    assert policy.check_pvc({"storageClassName": "fast"}, pol) == []
    assert policy.check_pvc({"storageClassName": "slow"}, pol) != []
    out = policy.apply_pod_policy({}, pol)
    assert out == {"nodeSelector": {"pool": "t"}, "tolerations": [tol], "runtimeClassName": "gvisor"}


def test_apply_pod_policy_keeps_the_tenant_tolerations_and_copies_deeply() -> None:
    own = {"key": "x", "operator": "Exists"}
    tol = {"key": "dedicated", "operator": "Equal", "value": "t", "effect": "NoSchedule"}
    spec = _pod(tolerations=[own, tol])
    out = policy.apply_pod_policy(spec, policy.PodPolicy(tolerations=(tol,)))
    assert out["tolerations"] == [own, tol]  # the tenant's first, the policy's not twice
    before = copy.deepcopy(spec)
    out["containers"][0]["image"] = "changed"
    out["tolerations"][0]["key"] = "changed"
    assert spec == before


def test_empty_policy_adds_nothing() -> None:
    spec = _pod(nodeSelector={"a": "b"})
    assert policy.apply_pod_policy(spec, policy.PodPolicy()) == spec


# ---- policy objects: what the apiserver is given -------------------------------------


def test_policy_objects_are_the_kubernetes_objects_the_spec_asks_for() -> None:
    iso = _iso(resourceQuota={"hard": {"pods": 5}}, limitRange={"defaults": {"memory": "1Gi"}}, networkPolicy=True)
    objs = policy.policy_objects(iso, super_namespace="acme-abc123--shop", cluster_key="acme-abc123",
                                 tenant_name="acme")
    meta = {"namespace": "acme-abc123--shop",
            "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY_OPERATOR, naming.LABEL_CLUSTER_KEY: "acme-abc123",
                       naming.LABEL_TENANT: "acme"}}
    assert objs == [
        # the LimitRange first: a pod made between the two must not be refused for stating no requests
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": naming.POLICY_LIMIT_RANGE_NAME, **meta},
         "spec": {"limits": [{"type": "Container", "default": {"memory": "1Gi"}}]}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": naming.POLICY_QUOTA_NAME, **meta},
         "spec": {"hard": {"pods": "5"}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": naming.POLICY_NETWORK_POLICY_NAME, **meta},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                      naming.LABEL_CLUSTER_KEY: "acme-abc123"}}}]}],
                  "egress": [
                      {"to": [{"namespaceSelector": {"matchLabels": {naming.LABEL_CLUSTER_KEY: "acme-abc123"}}}]},
                      {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                       "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                  ]}},
    ]


@pytest.mark.parametrize(
    ("limit_range", "expected"),
    [
        pytest.param({"defaults": {"cpu": "1"}}, [{"type": "Container", "default": {"cpu": "1"}}], id="defaults-only"),
        pytest.param({"defaultRequests": {"cpu": "1"}}, [{"type": "Container", "defaultRequest": {"cpu": "1"}}],
                     id="requests-only"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_limit_range_with_either_part(limit_range: dict[str, Any], expected: list[dict[str, Any]] | None) -> None:
    iso = _iso(limitRange=limit_range, networkPolicy=False)
    objs = policy.policy_objects(iso, super_namespace="n", cluster_key="k", tenant_name="t")
    assert [o["spec"]["limits"] for o in objs] == ([expected] if expected else [])
    assert ("LimitRange" in policy.stale_policy_kinds(iso)) is (expected is None)


@pytest.mark.parametrize("level", [BASELINE, RESTRICTED, PRIVILEGED])
def test_namespace_labels_enforce_warn_and_audit_the_level(level: str) -> None:
    assert policy.namespace_labels(_iso(podSecurity=level)) == {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": level,
        "pod-security.kubernetes.io/audit": level,
    }
