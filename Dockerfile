# mlmd2kfp as a container image: slim, non-root, no build tools in the final stage.
#
#   docker build -t REGISTRY/mlmd2kfp:0.1.0 .        (then push it and set `image:` in deploy/*.yaml)
#
# The image holds the CLI with the PostgreSQL driver, the C MySQL driver (mysqlclient) and ml-metadata
# (the independent read path of `verify`). It needs no Kubernetes API access and writes only to /work
# (an emptyDir in the Job).
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libmariadb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mlmd2kfp ./mlmd2kfp
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,mlmd,mysqlclient]"

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libmariadb3 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /work --shell /usr/sbin/nologin mlmd2kfp \
    && mkdir /work && chown 10001:10001 /work
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/work
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["mlmd2kfp"]
CMD ["--help"]
