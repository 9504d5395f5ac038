# Builds both binaries; one image runs either (`herald-api …` or `herald-worker …`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# .cargo/config.toml (copied above) sets SQLX_OFFLINE=true: the queries are checked against the
# committed .sqlx/ data, so the build needs no database
RUN cargo build --release --locked --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/herald-api /src/target/release/herald-worker /usr/local/bin/
USER nobody
