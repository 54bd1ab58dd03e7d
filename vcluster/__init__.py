"""virtualcluster: hard multi-tenancy for Kubernetes.

The ``vcluster`` package holds the shared foundation (naming, settings,
logging, the async Kubernetes API layer, the local test bed), the Kopf
operator that provisions tenant control planes, and the CLI.
"""

__version__ = "0.1.0"
