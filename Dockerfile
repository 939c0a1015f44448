# Two stages: the wheel is built from the source, and only the installed wheel reaches the image.
# No source tree sits in the working folder, so `spis worker` / `spis beat` (which start
# `python -m celery -A workers.app`) import the installed package, as every other command does.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY referral_service ./referral_service
COPY fhir_adapters ./fhir_adapters
COPY workers ./workers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY --from=build /wheels /wheels
# /app/var (beat's schedule and heartbeat) and /app/var/keys exist in the image, owned by the
# user SPIS runs as: a new named volume mounted there takes that owner and mode, so the one-shot
# `transit-keys` service can write its keys.
RUN pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --user-group --uid 10001 spis \
 && install -d -o spis -g spis -m 0750 /app/var \
 && install -d -o spis -g spis -m 0700 /app/var/keys
USER spis
EXPOSE 8000
ENTRYPOINT ["spis"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
