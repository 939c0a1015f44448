FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY referral_service ./referral_service
COPY fhir_adapters ./fhir_adapters
COPY workers ./workers
# /app/var (beat's schedule and heartbeat) and /app/var/keys exist in the image, owned by the
# user SPIS runs as: a new named volume mounted there takes that owner and mode, so the one-shot
# `transit-keys` service can write its keys.
RUN pip install --no-cache-dir . \
 && useradd --system --user-group --uid 10001 spis \
 && install -d -o spis -g spis -m 0750 /app/var \
 && install -d -o spis -g spis -m 0700 /app/var/keys
USER spis
EXPOSE 8000
ENTRYPOINT ["spis"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
