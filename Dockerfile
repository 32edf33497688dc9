# The subledger image: every process of docker-compose.yml runs `subledger <command>`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY api api
COPY cli cli
COPY ingress ingress
COPY processors processors
COPY projections projections
COPY runtime runtime
COPY schemas schemas
COPY simulator simulator
COPY topics.yaml ./
RUN pip install --no-cache-dir -c requirements.lock -e . \
    && useradd --create-home subledger \
    && install -d -o subledger /var/lib/subledger
USER subledger
ENTRYPOINT ["subledger"]
