"""Tenant control planes: one builder, two backends (``local`` processes, ``pods``).

Why: DESIGN.md asks for a single place that decides flags, certificates and
ports (:mod:`.builder`, pure) and backends that only *run* the result
(:mod:`.local`, :mod:`.pods`).  :mod:`.certs` completes the PKI from what was
stored before; :mod:`.spec` is the shared data model.
"""
