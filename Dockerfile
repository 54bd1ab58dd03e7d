# syntax=docker/dockerfile:1
# One image for every component of virtualcluster: the operator, the syncer and the kubelet proxy
# (manifests/ picks the component with the container's command). It holds the Python package only:
# in a real super cluster tenant control planes use the pods backend (upstream kube-apiserver and
# kube-controller-manager images), so no Kubernetes binaries are built into it.
#
#   docker build -t ghcr.io/virtualcluster/virtualcluster:0.1.0 .
#
# Build stage: a wheel of the project and wheels of its dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vcluster ./vcluster
COPY syncer ./syncer
COPY tenant_crd ./tenant_crd
COPY virtual_node ./virtual_node
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: no compilers, no sources, a non-root user (uid 65532, as the manifests expect).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VC_LOG_JSON=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels virtualcluster \
    && useradd --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin vcluster
USER 65532:65532
WORKDIR /tmp
# No default component: the Deployments say which one to run, e.g.
#   python -m vcluster.operator | python -m syncer | python -m virtual_node.proxy
ENTRYPOINT []
CMD ["python", "-m", "vcluster", "--help"]
