# One image for every saga-mesh process; the container command picks the process:
#   python -m coordinator | order_svc | stock_svc | pay_svc | points_svc, or meshctl for operators.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY meshpb meshpb
COPY meshkit meshkit
COPY coordinator coordinator
COPY order_svc order_svc
COPY stock_svc stock_svc
COPY pay_svc pay_svc
COPY points_svc points_svc
COPY meshctl meshctl
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 mesh
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1 MESH_SERVER__HOST=0.0.0.0 MESH_LOG__JSON=true
EXPOSE 50050 50150
CMD ["python", "-m", "coordinator"]
