"""Virtual nodes in tenant control planes and the kubelet-API proxy behind them.

Why this package exists: a tenant's pods run on super-cluster nodes that the
tenant must not see or reach directly.  The tenant still needs Node objects
(pods are bound to a node name; ``kubectl logs/exec`` go through a node's
kubelet endpoint), so every super node that runs a tenant's pods gets a
*virtual* Node in that tenant's control plane (:mod:`virtual_node.manager`),
and its kubelet endpoint is the kubelet proxy (:mod:`virtual_node.proxy`),
which admits a tenant only to its own pods.
"""
