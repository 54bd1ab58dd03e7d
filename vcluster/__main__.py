"""``python -m vcluster``: the same CLI as ``kubectl vc`` (see :mod:`vcluster.cli`)."""

from vcluster.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
