# sqlguard sidecar image: `docker run IMAGE --upstream postgresql://HOST:5432/DB`
FROM python:3.12-slim

RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sqlguard

WORKDIR /opt/sqlguard
COPY pyproject.toml README.md ./
COPY sqlguard ./sqlguard
# Compiled sqlglot where a wheel exists for this platform, pure Python otherwise; the OTLP
# exporter, so OTEL_TRACES_EXPORTER=otlp reaches a collector.
RUN pip install --no-cache-dir ".[fast,otlp]" || pip install --no-cache-dir ".[otlp]"
COPY rules /etc/sqlguard/rules

USER sqlguard
EXPOSE 6432
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 6432), 2).close()"]
ENTRYPOINT ["sqlguard", "serve", "--listen", "0.0.0.0:6432", "--rules", "/etc/sqlguard/rules"]
