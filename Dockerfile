# One image for every saga-mesh process; the container command picks the process:
#   python -m coordinator | order_svc | stock_svc | pay_svc | points_svc  (add `migrate` to run that
#   process's database migrations and exit), or meshctl for operators.
# Production dependencies only, at the versions of constraints.txt: no local-stack extra (no embedded
# nats-server or Redis), no dev tools.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY meshpb meshpb
COPY meshkit meshkit
COPY coordinator coordinator
COPY order_svc order_svc
COPY stock_svc stock_svc
COPY pay_svc pay_svc
COPY points_svc points_svc
COPY meshctl meshctl
COPY console console
RUN python -m venv /opt/saga-mesh \
    && /opt/saga-mesh/bin/pip install --no-cache-dir -c constraints.txt . \
    && /opt/saga-mesh/bin/pip uninstall --yes pip

FROM python:3.11-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="saga-mesh" \
      org.opencontainers.image.description="Distributed-transaction coordinator (TCC, saga, two-phase message) and its four-service order mesh" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --no-create-home mesh \
    && install -d -o 10001 -g 10001 /var/lib/saga-mesh
COPY --from=build /opt/saga-mesh /opt/saga-mesh
# Writable data directory (the default SQLite path ./mesh.db lands here); Kubernetes mounts an emptyDir.
WORKDIR /var/lib/saga-mesh
USER 10001:10001
ENV PATH=/opt/saga-mesh/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    MESH_SERVER__HOST=0.0.0.0 MESH_LOG__JSON=true
# gRPC: coordinator 50050, order 50051, stock 50052, pay 50053, points 50054; Prometheus on 9100 as
# the manifests configure (server.metrics_port).
EXPOSE 50050 50051 50052 50053 50054 9100
CMD ["python", "-m", "coordinator"]
