# syntax=docker/dockerfile:1
# BotShop: a release build, then a slim runtime image that runs as a non-root user.
#   docker build -t botshop .
#   docker compose up -d          (PostgreSQL + the app; see docker-compose.yml)

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and build artefacts between builds of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p server \
 && cp target/release/server /usr/local/bin/server

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /app botshop \
 && mkdir -p /app/data /app/media \
 && chown botshop:botshop /app/data /app/media
COPY --from=build /usr/local/bin/server /usr/local/bin/server
USER botshop
WORKDIR /app
# Production defaults; every key can be overridden at run time (see .env.example).
ENV HOST=0.0.0.0 \
    PORT=8000 \
    DEBUG=false \
    SQLITE_PATH=/app/data/botshop.db \
    MEDIA_DIR=/app/media
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["server", "healthcheck"]
ENTRYPOINT ["server"]
CMD ["serve"]
