# One image for every bearsite process: web (gunicorn), the cpu and gpu Celery workers, beat.
# torch comes from PyPI as its CUDA build; the NVIDIA driver is the host's (the GPU service
# reserves a device in docker-compose.yml), so no CUDA base image is needed.
FROM python:3.11-slim-bookworm

# TORCH_HOME: torchvision's weight cache lives on the data volume, not in a home directory.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=bearsite.settings \
    BEARSITE_DATA_DIR=/data \
    MEDIA_ROOT=/data/media \
    TORCH_HOME=/data/torch

# Dependencies first, so a code change does not reinstall torch. The pins install from
# manylinux wheels (psycopg[binary] carries libpq, Pillow libjpeg-turbo): no compiler, no apt.
# A private mirror or proxy: docker compose build --build-arg PIP_INDEX_URL=... (pip reads it
# from the environment; left unset, PyPI).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# An unprivileged user owns /data; an empty named volume mounted there inherits that owner.
RUN groupadd --system --gid 1000 bearsite \
    && useradd --system --uid 1000 --gid bearsite --home-dir /app --shell /usr/sbin/nologin bearsite \
    && mkdir -p /data/media /data/static /data/torch \
    && chown -R bearsite:bearsite /data

WORKDIR /app
COPY --chown=bearsite:bearsite . /app

USER bearsite
EXPOSE 8000

# docker-compose.yml sets each service's command; this default serves the site alone.
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py collectstatic --noinput && exec gunicorn bearsite.wsgi:application -b 0.0.0.0:8000 --workers 3 --timeout 300 --access-logfile -"]
