"""The sync-manager: one process that mirrors every tenant's objects into the super cluster.

Why this package exists: tenants get their own control planes, but their pods
must run on the super cluster's nodes.  The syncer watches each tenant
control plane and the objects it owns in the super cluster, and keeps the two
in step — objects down (prefixed namespaces, mutated pods), status up (pod
phase and node, service cluster IPs, events).  Layout:

* :mod:`syncer.settings` — knobs (``from_env``).
* :mod:`syncer.tenants` — where tenants come from (Tenant CRs, or tests).
* :mod:`syncer.informer` — list + watch caches of compact raw objects.
* :mod:`syncer.queue` — the fair, de-duplicating work queue with back-off.
* :mod:`syncer.resources` — per-kind pure translation, registered explicitly.
* :mod:`syncer.engine` — the I/O: three-way branch, upward status, patrol.
"""
