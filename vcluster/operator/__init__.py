"""The Kopf operator: Tenant → control plane, PKI, admin kubeconfig, isolation policy.

Why: DESIGN.md's admin writes one ``Tenant`` object; this package makes it
real and keeps it so.  Layers: :mod:`.reconcile` holds the logic (plain
async functions over :mod:`vcluster.kube`, no Kopf types), :mod:`.handlers`
attaches it to an explicit ``kopf.OperatorRegistry`` (no decorators at import
time), :mod:`.__main__` is the entry point (``python -m vcluster.operator``).
"""
