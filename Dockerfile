# groundtruth's image: the exporter (`groundtruth run`) and graphapi (`groundtruth graphapi`).
# bcc comes from Debian, as on a host (`make setup`): PyPI's "bcc" is an unrelated project, and
# Debian's python3-bpfcc is only importable by Debian's python3, so the virtual environment is
# made by that python3 with --system-site-packages. The kernel headers bcc compiles against are
# the host's, mounted at run time (/lib/modules, /usr/src: see docker-compose.yml).
FROM debian:bookworm-20260824-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        bpfcc-tools python3-bpfcc libbpf1 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/groundtruth
# Only what the package needs: a change to the tests or docs does not rebuild this layer.
COPY pyproject.toml README.md ./
COPY groundtruth ./groundtruth
COPY schema ./schema
COPY mixin ./mixin
COPY exporter ./exporter
COPY store ./store
COPY graph ./graph
COPY graphapi ./graphapi
COPY dashboards ./dashboards
COPY alerts ./alerts
COPY incident ./incident
COPY policy ./policy
COPY baseline ./baseline
RUN /usr/bin/python3 -m venv --system-site-packages /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/python -c "import bcc, groundtruth.cli"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# The exporter runs as root (BPF); graphapi drops to nobody in docker-compose.yml.
ENTRYPOINT ["groundtruth"]
CMD ["--help"]
