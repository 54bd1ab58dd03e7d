"""The kubelet-API proxy: every virtual node's kubelet endpoint.

Why: tenant apiservers send ``kubectl logs/exec/attach/port-forward`` to the
kubelet of the node a pod is bound to.  For a virtual node that is this proxy;
it learns the tenant from the client certificate, maps the tenant namespace
to its super namespace (through :mod:`vcluster.naming` only), checks that the
super pod is that tenant's, and forwards to the real kubelet, upgraded
streams included.  Pure request decisions live in :mod:`.routing`; the aiohttp
app in :mod:`.app`.
"""
