FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY referral_service ./referral_service
COPY fhir_adapters ./fhir_adapters
COPY workers ./workers
RUN pip install --no-cache-dir . && useradd --system --uid 10001 spis && mkdir -p /app/var/keys && chown -R spis /app/var
USER spis
EXPOSE 8000
ENTRYPOINT ["spis"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
