"""A pod's ``to_super`` leaves the tenant pod as it was, on every path that changes the spec.

Why: since round 10 of the syncer benchmarks ``to_super`` no longer copies the whole tenant spec (a JSON
round trip, half of the function's time): it copies the spec and its containers and replaces every
other field it changes.  A change made in place to a part it did not copy would write into the tenant
object — the informer's decoded copy in the engine, but the caller's own object for any other caller —
so this test runs it over a pod that takes every branch and requires the input unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

from syncer.resources.base import TranslateContext
from syncer.resources.pod import to_super
from vcluster.policy import PodPolicy

CTX = TranslateContext(
    key="acme-1a2b3c-u1", tenant_name="acme", tenant_uid="u1", apiserver_host="10.0.0.9", apiserver_port="6443",
    dns_ip="10.96.0.10", service_links=(("web", "10.200.0.5", ({"name": "http", "port": 80},)),),
    nameserver_ips=(("10.96.5.5", "10.200.5.5"),),
    policy=PodPolicy(node_selector={"pool": "tenants"}, tolerations=({"key": "t", "operator": "Exists"},),
                     runtime_class_name="gvisor"),
)


def rich_pod() -> dict[str, Any]:
    container = {"name": "app", "image": "busybox", "env": [
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}, {"name": "A", "value": "1"}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop", "uid": "v-uid", "labels": {"app": "p"}},
            "spec": {
                "serviceAccount": "default", "nodeName": "n1", "containers": [container],
                "initContainers": [copy.deepcopy(container)], "ephemeralContainers": [copy.deepcopy(container)],
                "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["x"]}],
                "dnsConfig": {"nameservers": ["10.96.5.5"], "searches": ["a"], "options": [{"name": "x"}]},
                "affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "k", "namespaceSelector": {}, "labelSelector": {"matchLabels": {"a": "b"}}}]}},
                "nodeSelector": {"zone": "a"}, "tolerations": [{"key": "own", "operator": "Exists"}],
                "volumes": [
                    {"name": "kube-api-access", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace",
                                                    "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "data", "emptyDir": {}}]}}


def test_to_super_leaves_the_tenant_pod_unchanged() -> None:
    for dns_policy in ("ClusterFirst", "None", "Default"):
        v_pod = rich_pod()
        v_pod["spec"]["dnsPolicy"] = dns_policy
        before = copy.deepcopy(v_pod)
        p_pod = to_super(v_pod, CTX)
        assert v_pod == before
        assert p_pod["spec"] != before["spec"]  # it did change things: on its own objects
        assert {"name": "NS", "value": "shop"} in p_pod["spec"]["containers"][0]["env"]
